/*
 * The samplesheet, the method list and --method_params, checked by `graphimpute check-samplesheet`,
 * turned into one [ meta, input ] item per sample and one [name, trains] item per method.
 */

include { SAMPLESHEET_CHECK } from '../../../modules/local/samplesheet_check'
include { inputLocation     } from '../pipeline_initialisation'

workflow INPUT_CHECK {
    take:
    ch_samplesheet         // channel (value): the samplesheet CSV, columns sample,input[,label_key,format,layer]
    ch_methods_spec        // channel (value): comma-separated method names, or 'all'
    ch_method_params_file  // channel (value): the --method_params JSON file, or [] without one

    main:
    // Relative inputs are relative to the samplesheet's own folder, wherever the pipeline is launched.
    ch_base_dir = ch_samplesheet.map { sheet -> sheet.parent.toUriString() }
    SAMPLESHEET_CHECK(ch_samplesheet, ch_methods_spec, ch_method_params_file, ch_base_dir)

    // A problem with the user's samplesheet, methods or --method_params stops the run with its message
    // (the check task exits 0 then, and writes no checked sheet: nothing downstream starts).
    SAMPLESHEET_CHECK.out.problem.subscribe { problem -> error(problem.text.trim()) }

    ch_samples = SAMPLESHEET_CHECK.out.csv
        .splitCsv(header: true, strip: true)
        .combine(ch_base_dir)
        .map { row, base_dir -> sampleFromRow(row, base_dir) }

    // Whether a method trains (the registry's Method.trains) decides IMPUTE or IMPUTE_TRAIN (the GPU label).
    ch_methods = SAMPLESHEET_CHECK.out.methods
        .splitCsv(header: true, sep: '\t', strip: true)
        .map { row -> [name: row.method, trains: row.trains == 'true'] }

    // A refused check publishes nothing, its versions included (they join the run's versions file).
    ch_versions = SAMPLESHEET_CHECK.out.csv.combine(SAMPLESHEET_CHECK.out.versions).map { _csv, versions -> versions }

    emit:
    samples  = ch_samples                          // channel: [ meta, input ], meta = [id, format, label_key, layer]
    methods  = ch_methods                          // channel: [name: method, trains: boolean] per method
    versions = ch_versions                         // channel: versions.yml of a check that passed
}

/*
 * One checked samplesheet row as [ meta, input ]; PIPELINE_INITIALISATION found every input before any
 * task (only Nextflow sees every storage they may be on: local, shared, s3://, gs://, az://).
 */
def sampleFromRow(row, base_dir) {
    def meta = [
        id       : row.sample,
        format   : row.format ?: 'auto',
        label_key: row.label_key ?: '',
        layer    : row.layer ?: ''
    ]
    return [meta, file(inputLocation(row.input, base_dir))]
}
