process NORMALISE {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    tuple val(meta), path(h5ad, stageAs: 'input/*')  // QC'd counts

    output:
    tuple val(meta), path("${prefix}.h5ad"), emit: h5ad
    path "${prefix}.normalise.log"         , emit: log
    path "${prefix}.normalise_mqc.tsv"     , emit: mqc
    path "versions.yml"                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    graphimpute_normalise \\
        ${h5ad} \\
        --output ${prefix}.h5ad \\
        --threads ${task.cpus} \\
        --log-file ${prefix}.normalise.log \\
        --quiet \\
        ${args}

    graphimpute_summarise \\
        ${prefix}.h5ad \\
        --step normalise \\
        --sample ${meta.id} \\
        --threads ${task.cpus} \\
        --output ${prefix}.normalise_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.h5ad ${prefix}.normalise.log ${prefix}.normalise_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
