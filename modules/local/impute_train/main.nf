/*
 * IMPUTE_TRAIN: one sample with one method that trains (the registry's Method.trains; `graphimpute
 * methods --json` shows it). The only process with the GPU label: with --use_gpu or
 * -profile gpu each task gets one accelerator (its own device), the CUDA image and the engine's GPU
 * option (conf/base.config) and trains with --device cuda, so a task that lands where there is no GPU
 * fails with a clear message instead of training on the CPU. Otherwise it trains on the CPU like
 * IMPUTE (modules/local/impute), whose script is the same but for the device.
 */
process IMPUTE_TRAIN {
    tag "${meta.id}:${meta.method}"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    tuple val(meta), path(h5ad, stageAs: 'input/*')  // counts with graphs; meta.method names the method

    output:
    tuple val(meta), path("${prefix}.h5ad"), emit: h5ad
    path "${prefix}.impute.log"             , emit: log
    path "${prefix}.impute_mqc.tsv"         , emit: mqc
    path "versions.yml"                    , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}.${meta.method}"
    def device = task.accelerator ? 'cuda' : 'cpu'
    // The memory guard checks its estimate against this task's memory; over it, exit code 75 (retried
    // with more memory, conf/base.config).
    def memory = task.memory ? "--memory-gb ${task.memory.toMega() / 1024}" : ''
    // Hyper-parameters from --method_params (a JSON file keyed by method), one --param each.
    def method_params = (meta.params ?: [:]).collect { key, value ->
        "--param '${key}=${value instanceof List ? value.join(',') : value}'"
    }.join(' ')
    """
    graphimpute_impute \\
        ${h5ad} \\
        --output ${prefix}.h5ad \\
        --method ${meta.method} \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${memory} \\
        ${method_params} \\
        --log-file ${prefix}.impute.log \\
        --quiet \\
        ${args}

    graphimpute_summarise \\
        ${prefix}.h5ad \\
        --step impute \\
        --sample ${prefix} \\
        --threads ${task.cpus} \\
        --output ${prefix}.impute_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
        torch: \$(python -c "import importlib.metadata as m; print(m.version('torch'))")
        torch_geometric: \$(python -c "import importlib.metadata as m; print(m.version('torch_geometric'))")
    END_VERSIONS
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${meta.method}"
    """
    touch ${prefix}.h5ad ${prefix}.impute.log ${prefix}.impute_mqc.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
