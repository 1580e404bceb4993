process SAMPLESHEET_CHECK {
    tag "${samplesheet.name}"
    label 'process_single'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    path samplesheet    // CSV: sample,input[,label_key,format,layer]
    val methods         // comma-separated method names, or 'all'
    path method_params  // --method_params JSON (every method and parameter name checked), or [] for none
    val base_dir        // folder or URI that relative inputs in the samplesheet are relative to

    output:
    path "samplesheet.valid.csv", emit: csv
    path "methods.tsv"          , emit: methods
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def check_params = method_params ? "--method-params ${method_params}" : ''
    // Inputs are not staged here, so Nextflow checks that they exist (subworkflows/local/input_check).
    """
    graphimpute_check_samplesheet \\
        ${samplesheet} \\
        --output samplesheet.valid.csv \\
        --methods '${methods}' \\
        --write-methods methods.tsv \\
        ${check_params} \\
        --base-dir '${base_dir}' \\
        --no-check-files \\
        --threads ${task.cpus} \\
        --log-file samplesheet_check.log \\
        --quiet \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    """
    cp ${samplesheet} samplesheet.valid.csv
    printf 'method\\ttrains\\n' > methods.tsv
    echo ${methods} | tr ',' '\\n' | sed 's/\$/\\tfalse/' >> methods.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
