/*
 * The samplesheet, the method list and --method_params, checked by `graphimpute check-samplesheet`,
 * turned into one [ meta, input ] item per sample and one [name, trains] item per method.
 */

include { SAMPLESHEET_CHECK } from '../../../modules/local/samplesheet_check'

workflow INPUT_CHECK {
    take:
    ch_samplesheet         // channel (value): the samplesheet CSV, columns sample,input[,label_key,format,layer]
    ch_methods_spec        // channel (value): comma-separated method names, or 'all'
    ch_method_params_file  // channel (value): the --method_params JSON file, or [] without one

    main:
    // Relative inputs are relative to the samplesheet's own folder, wherever the pipeline is launched.
    ch_base_dir = ch_samplesheet.map { sheet -> sheet.parent.toUriString() }
    SAMPLESHEET_CHECK(ch_samplesheet, ch_methods_spec, ch_method_params_file, ch_base_dir)

    ch_samples = SAMPLESHEET_CHECK.out.csv
        .splitCsv(header: true, strip: true)
        .combine(ch_base_dir)
        .map { row, base_dir -> sampleFromRow(row, base_dir) }

    // Whether a method trains (the registry's Method.trains) decides IMPUTE or IMPUTE_TRAIN (the GPU label).
    ch_methods = SAMPLESHEET_CHECK.out.methods
        .splitCsv(header: true, sep: '\t', strip: true)
        .map { row -> [name: row.method, trains: row.trains == 'true'] }

    emit:
    samples  = ch_samples                          // channel: [ meta, input ], meta = [id, format, label_key, layer]
    methods  = ch_methods                          // channel: [name: method, trains: boolean] per method
    versions = SAMPLESHEET_CHECK.out.versions      // channel: versions.yml
}

/*
 * One checked samplesheet row as [ meta, input ]. The input is looked for here, not in the check task,
 * because only Nextflow can see every storage (local, shared, s3://, gs://, az://) the inputs may be on.
 */
def sampleFromRow(row, base_dir) {
    def given = row.input
    def location = (given.startsWith('/') || given.contains('://')) ? given : "${base_dir}/${given}"
    def input = file(location)
    if (!input.exists()) {
        error("Samplesheet ${params.input}: input '${given}' of sample '${row.sample}' does not exist (looked for ${input.toUriString()})")
    }
    def meta = [
        id       : row.sample,
        format   : row.format ?: 'auto',
        label_key: row.label_key ?: '',
        layer    : row.layer ?: ''
    ]
    return [meta, input]
}
