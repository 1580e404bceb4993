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
    path "samplesheet.valid.csv", emit: csv    , optional: true
    path "methods.tsv"          , emit: methods, optional: true
    path "problem.txt"          , emit: problem, optional: true  // the user's mistake, one message
    path "versions.yml"         , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def check_params = method_params ? "--method-params ${method_params}" : ''
    // Inputs are not staged here, so Nextflow checks that they exist (subworkflows/local/pipeline_initialisation).
    // Exit 2 is a mistake in the user's input: its message goes to problem.txt, and the workflow stops the
    // run with it in a few lines instead of a failed task's report; any other failure is a failed task.
    """
    status=0
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
        ${args} \\
        2> check.err || status=\$?
    cat check.err >&2
    if [ \$status -eq 2 ]; then sed 's/^Error: //' check.err > problem.txt; elif [ \$status -ne 0 ]; then exit \$status; fi

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        python: \$(python -c "import platform; print(platform.python_version())")
    END_VERSIONS
    """

    stub:
    // The check itself (it reads no input: seconds), so that a stub run sends each method to IMPUTE or
    // IMPUTE_TRAIN as a real run does.
    def check_params = method_params ? "--method-params ${method_params}" : ''
    """
    graphimpute_check_samplesheet \\
        ${samplesheet} \\
        --output samplesheet.valid.csv \\
        --methods '${methods}' \\
        --write-methods methods.tsv \\
        ${check_params} \\
        --base-dir '${base_dir}' \\
        --no-check-files \\
        --quiet

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: ${workflow.manifest.version}
    END_VERSIONS
    """
}
