process MULTIQC {
    label 'process_single'

    conda "${projectDir}/containers/environment.yml"
    container "${params.container}"

    input:
    path multiqc_files, stageAs: '?/*'  // every step's *_mqc.tsv, the metrics and the software versions
    path multiqc_config

    output:
    path "multiqc_report.html"     , emit: report
    path "multiqc_report_data"     , emit: data
    path "versions.yml"       , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // MultiQC is the tool here, as in nf-core: graphimpute only writes the custom content it collates.
    """
    multiqc \\
        --force \\
        --config ${multiqc_config} \\
        --filename multiqc_report.html \\
        ${args} \\
        .

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        multiqc: \$(multiqc --version | sed 's/.*version //')
    END_VERSIONS
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
