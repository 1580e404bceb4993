#!/usr/bin/env nextflow
/*
 * graphimpute: graph deep-learning imputation of scRNA-seq dropout, benchmarked against baselines.
 *
 *   nextflow run . -profile test,docker --outdir results
 *   nextflow run . --help
 *
 * No plugin is needed: parameters are checked against nextflow_schema.json by the pipeline itself.
 */

include { PIPELINE_INITIALISATION } from './subworkflows/local/pipeline_initialisation'
include { PIPELINE_COMPLETION     } from './subworkflows/local/pipeline_completion'
include { GRAPHIMPUTE             } from './workflows/graphimpute'

workflow {
    main:
    PIPELINE_INITIALISATION()

    GRAPHIMPUTE(
        PIPELINE_INITIALISATION.out.samplesheet,
        PIPELINE_INITIALISATION.out.methods,
        PIPELINE_INITIALISATION.out.method_params,
        PIPELINE_INITIALISATION.out.method_params_file,
        PIPELINE_INITIALISATION.out.summary_mqc,
        // a flag given on the command line arrives as text under the strict syntax
        params.benchmark.toString().toBoolean()
    )

    PIPELINE_COMPLETION()
}
