process QC {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    tuple val(meta), path(counts, stageAs: 'input/*')  // h5ad, 10x directory, 10x h5 or CSV/TSV

    output:
    tuple val(meta), path("${prefix}.h5ad"), emit: h5ad
    path "${prefix}.qc.log"                , emit: log
    path "${prefix}.qc_mqc.tsv"            , emit: mqc
    path "versions.yml"                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def format = meta.format ? "--format ${meta.format}" : ''
    def label_key = meta.label_key ? "--label-key '${meta.label_key}'" : ''
    def layer = meta.layer ? "--layer '${meta.layer}'" : ''
    """
    graphimpute_qc \\
        ${counts} \\
        --output ${prefix}.h5ad \\
        ${format} \\
        ${label_key} \\
        ${layer} \\
        --threads ${task.cpus} \\
        --log-file ${prefix}.qc.log \\
        --quiet \\
        ${args}

    graphimpute_summarise \\
        ${prefix}.h5ad \\
        --step qc \\
        --sample ${meta.id} \\
        --threads ${task.cpus} \\
        --output ${prefix}.qc_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.h5ad ${prefix}.qc.log ${prefix}.qc_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
