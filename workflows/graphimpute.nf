/*
 * The graphimpute DAG:
 *   samplesheet check -> QC -> NORMALISE -> [MASK] -> GRAPH -> IMPUTE | IMPUTE_TRAIN (sample x method)
 *   -> [EVALUATE] -> MULTIQC
 * MASK and EVALUATE run in benchmark mode only (--benchmark): MASK once per sample and mask seed
 * (--mask_seeds), GRAPH and IMPUTE on each masked copy, EVALUATE once per sample over every seed and
 * method, as `graphimpute run --benchmark` does. Methods that train go to IMPUTE_TRAIN, the
 * only process with the GPU label; the others to IMPUTE. Each process calls one bin/ wrapper of one
 * `graphimpute` subcommand; `graphimpute run` does the same steps in one process.
 */

include { INPUT_CHECK  } from '../subworkflows/local/input_check'
include { QC           } from '../modules/local/qc'
include { NORMALISE    } from '../modules/local/normalise'
include { MASK         } from '../modules/local/mask'
include { GRAPH        } from '../modules/local/graph'
include { IMPUTE       } from '../modules/local/impute'
include { IMPUTE_TRAIN } from '../modules/local/impute_train'
include { EVALUATE     } from '../modules/local/evaluate'
include { MULTIQC      } from '../modules/local/multiqc'

workflow GRAPHIMPUTE {
    take:
    ch_samplesheet         // channel (value): the samplesheet CSV
    ch_methods_spec        // channel (value): comma-separated method names, or 'all'
    ch_method_params       // channel (value): map of method name -> hyper-parameter overrides (--method_params)
    ch_method_params_file  // channel (value): the --method_params file, checked by the first task, or []
    ch_summary_mqc         // channel (value): the parameter summary as MultiQC custom content (YAML text)
    benchmark              // boolean: --benchmark (MASK and EVALUATE run)

    main:
    ch_versions      = channel.empty()
    ch_multiqc_files = channel.empty()

    INPUT_CHECK(ch_samplesheet, ch_methods_spec, ch_method_params_file)
    ch_versions = ch_versions.mix(INPUT_CHECK.out.versions)
    ch_methods  = INPUT_CHECK.out.methods  // [name: method, trains: boolean]

    QC(INPUT_CHECK.out.samples)
    ch_versions      = ch_versions.mix(QC.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(QC.out.mqc)

    NORMALISE(QC.out.h5ad)
    ch_versions      = ch_versions.mix(NORMALISE.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(NORMALISE.out.mqc)

    // Benchmark mode hides counts before the graphs are built, once per mask seed, as `graphimpute run
    // --benchmark` does: seeds params.seed, params.seed + 1, ..., params.seed + params.mask_seeds - 1. Each
    // masked copy is its own item from here on: meta.id = '<sample>.seed<k>' names its files (mask/, graph/,
    // impute/), meta.sample keeps the sample and meta.mask_seed the seed MASK draws with. Only EVALUATE
    // reads the truth.
    mask_seeds     = maskSeeds(params.seed, params.mask_seeds)
    ch_graph_input = NORMALISE.out.h5ad
    ch_truth       = channel.empty()
    ch_evaluated   = channel.empty()
    if (benchmark) {
        ch_mask_input = NORMALISE.out.h5ad
            .combine(channel.fromList(mask_seeds))
            .map { meta, h5ad, mask_seed -> [maskedMeta(meta, mask_seed), h5ad] }
        MASK(ch_mask_input)
        ch_graph_input   = MASK.out.h5ad
        ch_truth         = MASK.out.truth
        ch_versions      = ch_versions.mix(MASK.out.versions)
        ch_multiqc_files = ch_multiqc_files.mix(MASK.out.mqc)
    }

    // The graphs every method shares (PCA, the kNN cell graph), once per sample (per masked copy in benchmark
    // mode). Which methods run is no input of GRAPH: each IMPUTE task builds its method's own graphs, so
    // changing --methods under -resume reuses GRAPH and every imputation still asked for, and runs only the
    // new ones and EVALUATE.
    GRAPH(ch_graph_input)
    ch_versions      = ch_versions.mix(GRAPH.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(GRAPH.out.mqc)

    // Fan out: every sample (every masked copy) x every method; methods that train to IMPUTE_TRAIN (the GPU
    // label).
    ch_impute_input = GRAPH.out.h5ad
        .combine(ch_methods)
        .combine(ch_method_params)
        .map { meta, h5ad, method, overrides ->
            [meta + [method: method.name, trains: method.trains, params: overrides[method.name] ?: [:]], h5ad]
        }
        .branch { meta, _h5ad ->
            train: meta.trains
            other: true
        }
    IMPUTE(ch_impute_input.other)
    IMPUTE_TRAIN(ch_impute_input.train)
    ch_imputed       = IMPUTE.out.h5ad.mix(IMPUTE_TRAIN.out.h5ad)
    ch_versions      = ch_versions.mix(IMPUTE.out.versions, IMPUTE_TRAIN.out.versions)
    ch_multiqc_files = ch_multiqc_files.mix(IMPUTE.out.mqc, IMPUTE_TRAIN.out.mqc)

    // Gather, by the sample (meta.sample): every method's imputation of every masked copy, and the truth of
    // every copy. groupKey tells groupTuple how many to wait for (methods x mask seeds; mask seeds), so each
    // sample's EVALUATE starts as soon as its own imputations are done. EVALUATE pairs each imputation with
    // the truth of its own mask seed (recorded in the file), and its meta is the sample's.
    if (benchmark) {
        ch_truths = ch_truth
            .map { meta, truth -> [groupKey(meta.sample, mask_seeds.size()), meta, truth] }
            .groupTuple()
            .map { key, metas, truths -> [key.getGroupTarget(), sampleMeta(metas[0]), truths] }
        ch_evaluate_input = ch_imputed
            .combine(ch_methods.count())
            .map { meta, h5ad, n_methods -> [groupKey(meta.sample, n_methods * mask_seeds.size()), h5ad] }
            .groupTuple()
            .map { key, imputed -> [key.getGroupTarget(), imputed] }
            .join(ch_truths, failOnMismatch: true)
            .map { _sample, imputed, meta, truths ->
                [meta, imputed.sort { path -> path.name }, truths.sort { path -> path.name }]
            }
        EVALUATE(ch_evaluate_input)
        ch_versions      = ch_versions.mix(EVALUATE.out.versions)
        ch_evaluated     = EVALUATE.out.results.flatMap { _meta, tables, jsons -> tables + jsons }
    }

    // Software versions of every task, once each, plus the workflow's own: into the report (where
    // MULTIQC adds its own), and published with MULTIQC's included; nothing when the input check refused
    // the run (the workflow's own versions follow the check's).
    ch_workflow_versions = INPUT_CHECK.out.versions.map { _checked ->
        // text, not a GString: a GString holding the engine's VersionNumber cannot cross a channel
        "Workflow:\n    graphimpute: ${workflow.manifest.version}\n    Nextflow: ${workflow.nextflow.version}".toString()
    }
    ch_versions_text = ch_versions
        .map { path -> path.text.trim() }
        .mix(ch_workflow_versions)
        .unique()
    ch_versions_file = ch_versions_text
        .collectFile(name: 'graphimpute_software_mqc_versions.yml', newLine: true, sort: true)
    ch_summary_file = ch_summary_mqc
        .collectFile(name: 'workflow_summary_mqc.yaml')

    MULTIQC(
        ch_multiqc_files.mix(ch_versions_file, ch_summary_file).collect(),
        ch_evaluated.collect().ifEmpty([]),
        file(params.multiqc_config, checkIfExists: true)
    )
    ch_versions_text
        .mix(MULTIQC.out.versions.map { path -> path.text.trim() })
        .collectFile(name: 'graphimpute_software_mqc_versions.yml', storeDir: "${params.outdir}/pipeline_info",
                     newLine: true, sort: true)
}

/*
 * The mask seeds of `graphimpute run --benchmark --mask-seeds N --seed S`: S, S + 1, ..., S + N - 1 (one MASK
 * task per sample and seed). Values given on the command line may arrive as text under the strict syntax.
 */
def maskSeeds(seed, n_seeds) {
    def first = seed.toString().toInteger()
    return (0..<n_seeds.toString().toInteger()).collect { k -> first + k }
}

// The meta of one masked copy of a sample: id '<sample>.seed<k>' names its files (as `graphimpute run`
// names them), sample keeps the sample's name, mask_seed is the seed MASK draws with.
def maskedMeta(meta, mask_seed) {
    return meta + [id: "${meta.id}.seed${mask_seed}".toString(), sample: meta.id, mask_seed: mask_seed]
}

// The meta of a whole sample, from the meta of one of its masked copies: the sample's id, no mask seed.
def sampleMeta(meta) {
    return meta.findAll { name, _value -> name != 'mask_seed' } + [id: meta.sample]
}
