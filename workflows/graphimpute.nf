/*
 * The graphimpute DAG:
 *   samplesheet check -> QC -> NORMALISE -> [MASK] -> GRAPH -> IMPUTE (sample x method) -> [EVALUATE] -> MULTIQC
 * MASK and EVALUATE run in benchmark mode only (--benchmark). Each process calls one bin/ wrapper of
 * one `graphimpute` subcommand; `graphimpute run` does the same steps in one process.
 */

include { INPUT_CHECK } from '../subworkflows/local/input_check'
include { QC          } from '../modules/local/qc'
include { NORMALISE   } from '../modules/local/normalise'
include { MASK        } from '../modules/local/mask'
include { GRAPH       } from '../modules/local/graph'
include { IMPUTE      } from '../modules/local/impute'
include { EVALUATE    } from '../modules/local/evaluate'
include { MULTIQC     } from '../modules/local/multiqc'

workflow GRAPHIMPUTE {
    take:
    ch_samplesheet     // channel (value): the samplesheet CSV
    ch_methods_spec    // channel (value): comma-separated method names, or 'all'
    ch_method_params   // channel (value): map of method name -> hyper-parameter overrides (--method_params)
    ch_summary_mqc     // channel (value): the parameter summary as MultiQC custom content (YAML text)

    main:
    ch_versions      = channel.empty()
    ch_multiqc_files = channel.empty()

    INPUT_CHECK(ch_samplesheet, ch_methods_spec)
    ch_versions = ch_versions.mix(INPUT_CHECK.out.versions)
    ch_methods  = INPUT_CHECK.out.methods

    QC(INPUT_CHECK.out.samples)
    ch_versions      = ch_versions.mix(QC.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(QC.out.mqc)

    NORMALISE(QC.out.h5ad)
    ch_versions      = ch_versions.mix(NORMALISE.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(NORMALISE.out.mqc)

    // Benchmark mode hides counts before the graphs are built; only EVALUATE reads the truth.
    ch_graph_input = NORMALISE.out.h5ad
    ch_truth       = channel.empty()
    ch_evaluated   = channel.empty()
    if (params.benchmark) {
        MASK(NORMALISE.out.h5ad)
        ch_graph_input   = MASK.out.h5ad
        ch_truth         = MASK.out.truth
        ch_versions      = ch_versions.mix(MASK.out.versions)
        ch_multiqc_files = ch_multiqc_files.mix(MASK.out.mqc)
    }

    // One graph file per sample, holding every graph the chosen methods need.
    GRAPH(ch_graph_input, ch_methods.collect().map { names -> names.join(',') })
    ch_versions      = ch_versions.mix(GRAPH.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(GRAPH.out.mqc)

    // Fan out: every sample x every method.
    ch_impute_input = GRAPH.out.h5ad
        .combine(ch_methods)
        .combine(ch_method_params)
        .map { meta, h5ad, method, overrides -> [meta + [method: method, params: overrides[method] ?: [:]], h5ad] }
    IMPUTE(ch_impute_input)
    ch_versions      = ch_versions.mix(IMPUTE.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(IMPUTE.out.mqc)

    // Gather: every method of a sample, with that sample's truth.
    if (params.benchmark) {
        ch_evaluate_input = IMPUTE.out.h5ad
            .map { meta, h5ad -> [meta.id, h5ad] }
            .groupTuple()
            .join(ch_truth.map { meta, truth -> [meta.id, meta, truth] }, failOnMismatch: true)
            .map { id, imputed, meta, truth -> [meta, imputed.sort { path -> path.name }, truth] }
        EVALUATE(ch_evaluate_input)
        ch_versions      = ch_versions.mix(EVALUATE.out.versions)
        ch_evaluated     = EVALUATE.out.results.flatMap { meta, tables, jsons -> tables + jsons }
    }

    // Software versions of every task, once each, plus the workflow's own.
    ch_workflow_versions = channel.of(
        "Workflow:\n    graphimpute: ${workflow.manifest.version}\n    Nextflow: ${workflow.nextflow.version}"
    )
    ch_versions_file = ch_versions
        .map { path -> path.text.trim() }
        .mix(ch_workflow_versions)
        .unique()
        .collectFile(name: 'graphimpute_software_mqc_versions.yml', storeDir: "${params.outdir}/pipeline_info",
                     newLine: true, sort: true)
    ch_summary_file = ch_summary_mqc
        .collectFile(name: 'workflow_summary_mqc.yaml')

    MULTIQC(
        ch_multiqc_files.mix(ch_versions_file, ch_summary_file).collect(),
        ch_evaluated.collect().ifEmpty([]),
        file(params.multiqc_config, checkIfExists: true)
    )

    emit:
    multiqc_report = MULTIQC.out.report  // channel: multiqc_report.html
    versions       = ch_versions         // channel: every task's versions.yml
}
