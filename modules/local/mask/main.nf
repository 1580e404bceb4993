/*
 * MASK: one masked copy of one sample, drawn with the mask seed meta.mask_seed (benchmark mode runs one task
 * per sample and mask seed; meta.id, '<sample>.seed<k>', names the outputs as `graphimpute run` does).
 */
process MASK {
    tag "$meta.id"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    tuple val(meta), path(h5ad, stageAs: 'input/*')  // normalised counts; meta.mask_seed: the mask seed

    output:
    tuple val(meta), path("${prefix}.h5ad")      , emit: h5ad
    tuple val(meta), path("${prefix}.truth.h5ad"), emit: truth
    path "${prefix}.mask.log"                    , emit: log
    path "${prefix}.mask_mqc.tsv"                , emit: mqc
    path "versions.yml"                          , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    graphimpute_mask \\
        ${h5ad} \\
        --output ${prefix}.h5ad \\
        --truth ${prefix}.truth.h5ad \\
        --seed ${meta.mask_seed} \\
        --threads ${task.cpus} \\
        --log-file ${prefix}.mask.log \\
        --quiet \\
        ${args}

    graphimpute_summarise \\
        ${prefix}.h5ad \\
        --step mask \\
        --sample ${meta.id} \\
        --threads ${task.cpus} \\
        --output ${prefix}.mask_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.h5ad ${prefix}.truth.h5ad ${prefix}.mask.log ${prefix}.mask_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
