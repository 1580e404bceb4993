process MULTIQC {
    label 'process_single'

    conda "${moduleDir}/../../../containers/environment.yml"

    input:
    path multiqc_files, stageAs: '?/*'  // every step's *_mqc.tsv, the software versions, the parameter summary
    path evaluated, stageAs: 'evaluate/*'  // benchmark mode: EVALUATE's files of every sample (else none)
    path multiqc_config

    output:
    path "multiqc_report.html", emit: report
    path "multiqc_report_data", emit: data
    path "report/custom_content", emit: custom_content, optional: true
    path "versions.yml"       , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // Benchmark mode: `graphimpute report` turns EVALUATE's files into custom content (metric tables,
    // bar graphs, loss curves, UMAPs); MultiQC then renders it together with every step's own table.
    """
    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        graphimpute: \$(python -c "import graphimpute; print(graphimpute.__version__)")
        multiqc: \$(multiqc --version | sed 's/.*version //')
    END_VERSIONS
    # MultiQC's own version goes into the report's software versions beside every other step's
    cp versions.yml multiqc_mqc_versions.yml

    # MultiQC's "Welcome! Watch a tutorial video" box has no setting: a stylesheet hides it (the same
    # rule as graphimpute.report.REPORT_CSS, which benchmark mode's own config also names)
    echo '#mqc_welcome { display: none !important; }' > graphimpute_report.css

    configs=(--config ${multiqc_config})
    if compgen -G 'evaluate/*.summary.json' > /dev/null; then
        graphimpute_report \\
            evaluate \\
            --outdir report \\
            --no-render \\
            --threads ${task.cpus} \\
            --log-file report.log \\
            --quiet
        configs=(--config report/custom_content/multiqc_config.yaml "\${configs[@]}")
    fi

    multiqc \\
        --force \\
        "\${configs[@]}" \\
        --cl-config 'custom_css_files: [graphimpute_report.css]' \\
        --filename multiqc_report.html \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_report_data
    touch multiqc_report.html

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        multiqc: stub
    END_VERSIONS
    """
}
