/*
 * EVALUATE: every imputation of one sample (every method x every mask seed) scored together, each against
 * the truth of its own mask seed (read from the file); scores are mean +/- sd over the seeds.
 */
process EVALUATE {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    // every method's imputation of every masked copy of one sample, and the truth of every mask seed
    tuple val(meta), path(imputed, stageAs: 'impute/*', arity: '1..*'), path(truth, stageAs: 'truth/*', arity: '1..*')

    output:
    tuple val(meta), path("${prefix}.{metrics,summary,ranking,runs,histories,embeddings}.tsv"), path("${prefix}.{summary,versions}.json"), emit: results
    tuple val(meta), path("${prefix}.metrics.tsv"), emit: metrics
    path "${prefix}.evaluate.log"                 , emit: log
    path "versions.yml"                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def label_key = meta.label_key ? "--label-key '${meta.label_key}'" : ''
    // one --truth per mask seed
    def truths = truth.collect { path -> "--truth ${path}" }.join(' ')
    """
    graphimpute_evaluate \\
        ${imputed} \\
        ${truths} \\
        --outdir . \\
        --sample ${prefix} \\
        ${label_key} \\
        --threads ${task.cpus} \\
        --log-file ${prefix}.evaluate.log \\
        --quiet \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.metrics.tsv ${prefix}.summary.tsv ${prefix}.ranking.tsv ${prefix}.runs.tsv ${prefix}.histories.tsv ${prefix}.embeddings.tsv
    touch ${prefix}.summary.json ${prefix}.versions.json ${prefix}.evaluate.log

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
