/*
 * Completion: one summary of the run, and on failure what to do next.
 */

workflow PIPELINE_COMPLETION {
    main:
    workflow.onComplete {
        log.info(completionSummary())
    }
    // Inside these handlers `workflow` is not the run's metadata: the functions below read it.
    workflow.onError {
        log.error(errorSummary())
    }
}

def errorSummary() {
    return "graphimpute failed: ${workflow.errorMessage ?: 'see the error above'}\n" +
           "The failing task's folder holds .command.sh, .command.log and the step's log file. " +
           "Once fixed, relaunch with -resume: finished tasks are not run again."
}

def completionSummary() {
    def stats = workflow.stats
    def lines = [
        '-' * 72,
        "${workflow.manifest.name} ${workflow.manifest.version} ${workflow.success ? 'completed' : 'failed'}",
        "  duration          : ${workflow.duration}",
        "  tasks succeeded   : ${stats.succeededCount} (cached: ${stats.cachedCount})",
        "  tasks failed      : ${stats.failedCount} (retried: ${stats.retriesCount}, ignored: ${stats.ignoredCount})",
        "  results           : ${params.outdir}"
    ]
    if (workflow.success) {
        lines << "  report            : ${params.outdir}/multiqc/multiqc_report.html"
        lines << "  run information   : ${params.outdir}/pipeline_info/"
    }
    lines << '-' * 72
    return lines.join('\n')
}
