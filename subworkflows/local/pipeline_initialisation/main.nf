/*
 * Start-up: --version, --help (from nextflow_schema.json), parameter checks against the schema, the
 * refusal of --methods auto (graphimpute run only), the software checks (images, GPUs), the parameter summary (log and MultiQC), and --method_params. Plain
 * Groovy, no plugin: the pipeline runs on clusters that cannot download one.
 */

workflow PIPELINE_INITIALISATION {
    main:
    def schema = readSchema("${projectDir}/nextflow_schema.json")
    // Under Nextflow's strict syntax a command-line value reaches params as text ('false', '3'): cast
    // each by its schema type first, then decide and validate on the cast values.
    def options = castParameters(schema, params)

    if (options.version) {
        log.info("${workflow.manifest.name} ${workflow.manifest.version}")
        System.exit(0)
    }
    if (options.help) {
        log.info(helpMessage(schema, options.help))
        System.exit(0)
    }
    if (options.validate_params) {
        validateParameters(schema, options)
    }
    def unsupported = methodsProblem(options.methods)
    if (unsupported) {
        refuse(unsupported)
    }
    def software = softwareProblems(options, workflow.containerEngine, workflow.profile,
                                    workflow.workDir.toUriString(), workflow.nextflow.version.toString())
    software.warnings.each { message -> log.warn(message) }
    if (software.errors) {
        refuse("Software settings:\n" + software.errors.collect { message -> "  * ${message}" }.join('\n'))
    }
    def missing = missingInputs(file(options.input))
    if (missing) {
        refuse("Samplesheet ${options.input}:\n" + missing.collect { message -> "  * ${message}" }.join('\n'))
    }
    log.info(summaryLog(schema, options))

    emit:
    samplesheet        = channel.value(file(options.input, checkIfExists: true))
    methods            = channel.value(options.methods.toString())
    method_params      = channel.value(readMethodParams(options.method_params))
    // the file itself, for the first task to check every method and parameter name against the registry
    method_params_file = channel.value(options.method_params ? file(options.method_params, checkIfExists: true) : [])
    summary_mqc        = channel.value(summaryMultiqc(schema, options))
}

// ---- the schema ---------------------------------------------------------------------------------------

def readSchema(path) {
    return new groovy.json.JsonSlurper().parseText(file(path, checkIfExists: true).text)
}

// Every parameter's definition, by name, over all groups.
def schemaProperties(schema) {
    def properties = [:]
    (schema['$defs'] ?: [:]).each { _group_name, group -> properties.putAll(group.properties ?: [:]) }
    properties.putAll(schema.properties ?: [:])
    return properties
}

def schemaRequired(schema) {
    def required = [] + (schema.required ?: [])
    (schema['$defs'] ?: [:]).each { _group_name, group -> required.addAll(group.required ?: []) }
    return required
}

// ---- --help -------------------------------------------------------------------------------------------

def helpMessage(schema, topic) {
    def properties = schemaProperties(schema)
    if (topic instanceof CharSequence) {
        def name = topic.toString().replaceFirst(/^-+/, '')
        def spec = properties[name]
        if (spec == null) {
            return "No parameter --${name}; run with --help to list them all."
        }
        return describeParameter(name, spec, true)
    }
    def lines = [
        "${workflow.manifest.name} ${workflow.manifest.version}: ${workflow.manifest.description}",
        '',
        'Typical command:',
        '  nextflow run <path or repository> -profile docker --input samplesheet.csv --outdir results',
        ''
    ]
    schema['$defs'].each { _group_name, group ->
        def shown = (group.properties ?: [:]).findAll { _name, spec -> !spec.hidden }
        if (shown) {
            lines << "${group.title}:"
            shown.each { name, spec -> lines << describeParameter(name, spec, false) }
            lines << ''
        }
    }
    lines << 'Run with --help NAME (for example --help methods) for the full help text of one parameter,'
    lines << 'hidden ones included. Profiles: docker, singularity, apptainer, conda, local, gpu, test, test_full, debug.'
    return lines.join('\n')
}

def describeParameter(name, spec, full) {
    def type = spec.type instanceof List ? spec.type.join('|') : spec.type
    def line = "  --${name.padRight(20)} [${type}] ${spec.description ?: ''}"
    if (spec['enum']) {
        line += " One of: ${spec['enum'].join(', ')}."
    }
    if (spec.default != null) {
        line += " [default: ${spec.default}]"
    }
    if (full && spec.help_text) {
        line += "\n\n${spec.help_text}"
    }
    return line
}

// ---- parameter checks ---------------------------------------------------------------------------------

def validateParameters(schema, parameters) {
    def properties = schemaProperties(schema)
    def problems = []
    schemaRequired(schema).each { name ->
        if (parameters[name] == null || parameters[name].toString().trim() == '') {
            problems << "--${name} is required: ${properties[name]?.description ?: ''}"
        }
    }
    parameters.each { name, value ->
        def spec = properties[name]
        if (spec == null) {
            // Nextflow adds a camelCase copy of every --kebab-case option; only truly unknown names are reported.
            if (!properties.keySet().any { known -> camelCase(known) == name || known.replace('_', '-') == name }) {
                log.warn("--${name} is not a parameter of this pipeline (see --help); it is ignored")
            }
            return
        }
        def problem = checkValue(name, value, spec)
        if (problem) {
            problems << problem
        }
    }
    if (problems) {
        refuse("Invalid parameters:\n" + problems.collect { problem -> "  * ${problem}" }.join('\n'))
    }
}

// Stops the run before any task with the reason, and publishes nothing: Nextflow opened this run's trace
// file at start (nextflow.config names it), so it and the folders made for it are removed again.
def refuse(message) {
    try {
        def info = file("${params.outdir}/pipeline_info")
        file("${info}/execution_trace_${params.trace_report_suffix}.txt").delete()
        [info, file(params.outdir)].each { folder -> if (folder.isDirectory() && !folder.list()) { folder.delete() } }
    }
    catch (Exception cause) {
        log.debug("could not remove the trace file of a refused run: ${cause}")
    }
    error(message)
}

// ---- the samplesheet's inputs ---------------------------------------------------------------------------

// Inputs named in the samplesheet that do not exist, as messages (relative ones are relative to the
// samplesheet's folder). Only Nextflow sees every storage they may be on (local, s3://, gs://, az://), so it
// looks for them here, before any task; the rest of the sheet is checked by `graphimpute check-samplesheet`
// in the first task, which also reports a sheet this cannot read.
def missingInputs(samplesheet) {
    def rows
    try {
        rows = samplesheet.splitCsv(header: true, strip: true)
    }
    catch (Exception _cause) {
        return []
    }
    def base_dir = samplesheet.parent.toUriString()
    return rows.findAll { row -> row.input }.collect { row -> [row, inputLocation(row.input, base_dir)] }
        .findAll { _row, location -> !file(location).exists() }
        .collect { row, location -> "input '${row.input}' of sample '${row.sample}' does not exist (looked for ${location})" }
}

// Where a samplesheet input is: absolute paths and URIs as given, relative paths in the samplesheet's folder.
def inputLocation(given, base_dir) {
    return (given.startsWith('/') || given.contains('://')) ? given : "${base_dir}/${given}"
}

def camelCase(name) {
    return name.replaceAll(/[_-]([a-z])/) { _match, letter -> letter.toUpperCase() }
}

// Why the pipeline cannot run these --methods, or null. `auto` is `graphimpute run`'s own selection (it
// scores the candidates by molecular cross-validation on the input, then imputes with the winner in the
// same process); the pipeline imputes with the methods it is given, so it refuses `auto` here, before any
// task, whatever else the list holds.
def methodsProblem(methods) {
    def names = (methods ?: '').toString().tokenize(',').collect { name -> name.trim() }
    if (!('auto' in names)) {
        return null
    }
    return ("--methods auto is not supported by the Nextflow pipeline: it is `graphimpute run --methods auto` " +
            "only (it chooses one method by molecular cross-validation on your data and imputes with it). " +
            "Run `graphimpute run --input <counts> --outdir <folder> --methods auto` instead, or give the " +
            "pipeline methods by name (or 'all') and compare them with --benchmark")
}

// ---- command-line values as the schema's types ----------------------------------------------------------

// The parameters with every text value cast to its schema type where it reads as one: 'true'/'false' for
// booleans, whole numbers for integers, decimal numbers for numbers. Under the strict syntax Nextflow
// passes command-line values on as text (`--benchmark false` is the text 'false', which counts as true).
def castParameters(schema, parameters) {
    def properties = schemaProperties(schema)
    return parameters.collectEntries { name, value -> [name, castValue(value, properties[name])] }
}

def castValue(value, spec) {
    if (spec == null || !(value instanceof CharSequence)) {
        return value
    }
    def types = spec.type instanceof List ? spec.type : [spec.type]
    def text = value.toString().trim()
    if ('boolean' in types && text.toLowerCase() in ['true', 'false']) {
        return text.toLowerCase() == 'true'
    }
    if ('integer' in types && text ==~ /[-+]?\d+/) {
        return text.isInteger() ? text.toInteger() : text.toLong()
    }
    if ('number' in types && text.isBigDecimal()) {
        return text.toBigDecimal()
    }
    return value
}

// The reason a value does not fit its schema entry, or null.
def checkValue(name, value, spec) {
    if (value == null) {
        return null
    }
    def types = spec.type instanceof List ? spec.type : [spec.type]
    if (value instanceof Boolean) {
        return 'boolean' in types ? null : "--${name} needs a value (${types.join(' or ')}), not a bare flag"
    }
    if (types == ['boolean']) {
        return "--${name} is a flag (true or false), got '${value}'"
    }
    if ('integer' in types && !('string' in types) && !(value instanceof Integer || value instanceof Long)) {
        return "--${name} must be a whole number, got '${value}'"
    }
    if ('number' in types && !(value instanceof Number)) {
        return "--${name} must be a number, got '${value}'"
    }
    if (value instanceof Number) {
        if (spec.minimum != null && value < spec.minimum) {
            return "--${name} must be at least ${spec.minimum}, got ${value}"
        }
        if (spec.maximum != null && value > spec.maximum) {
            return "--${name} must be at most ${spec.maximum}, got ${value}"
        }
        if (spec.exclusiveMinimum != null && value <= spec.exclusiveMinimum) {
            return "--${name} must be more than ${spec.exclusiveMinimum}, got ${value}"
        }
        if (spec.exclusiveMaximum != null && value >= spec.exclusiveMaximum) {
            return "--${name} must be less than ${spec.exclusiveMaximum}, got ${value}"
        }
    }
    def text = value.toString()
    if (spec['enum'] && !(text in spec['enum'].collect { choice -> choice.toString() })) {
        return "--${name} must be one of ${spec['enum'].join(', ')}, got '${text}'"
    }
    if (spec.pattern && !(text ==~ spec.pattern)) {
        return "--${name} '${text}' does not match ${spec.pattern}${spec.errorMessage ? ': ' + spec.errorMessage : ''}"
    }
    if (spec.exists && spec.format in ['file-path', 'directory-path'] && !file(text).exists()) {
        return "--${name} ${text} does not exist"
    }
    return null
}

// ---- software: images and GPUs ------------------------------------------------------------------------

// What cannot work with these software settings (errors) and what may not do what is meant (warnings).
// Images are named in conf/base.config from --container_registry and --container_tag (docs/usage.md).
def softwareProblems(options, engine, profile, work_dir, nextflow_version) {
    def errors = []
    def warnings = []
    def registry = (options.container_registry ?: '').toString()
    def gpu = options.use_gpu.toString().toBoolean()
    def images_given = options.container && (!gpu || options.container_gpu)
    if (engine in ['docker', 'podman'] && (registry.startsWith('oras://') || registry.startsWith('https://'))) {
        errors << ("--container_registry ${registry}: ${engine} runs Docker images; oras:// and https:// " +
                   "addresses hold Singularity/Apptainer images. Give the registry the Docker images were " +
                   "pushed to (host/namespace)")
    }
    if (engine in ['singularity', 'apptainer'] && !registry && !images_given) {
        errors << ("${engine} needs to know where the images are: --container_registry (host/namespace, " +
                   "oras://host/namespace or https://server/folder), or local .sif files with --container" +
                   "${gpu ? ' and --container_gpu' : ''}; without either, graphimpute:${options.container_tag} " +
                   "would be looked for on Docker Hub, where it is not published (docs/usage.md, Software)")
    }
    if (engine && work_dir ==~ /^(s3|gs|az):\/\/.*/ && !registry && !images_given) {
        errors << ("a work directory on ${work_dir.tokenize(':')[0]}:// means tasks run on cloud machines, " +
                   "which pull images from a registry: give --container_registry (docs/usage.md, Software)")
    }
    if (gpu) {
        if (profile.tokenize(',').contains('conda')) {
            errors << ("--use_gpu with -profile conda: the conda environment has the CPU build of PyTorch; " +
                       "train on GPUs in the CUDA image with -profile docker, singularity or apptainer")
        }
        else if (!engine) {
            warnings << ("--use_gpu without a container engine: IMPUTE_TRAIN trains with --device cuda on " +
                         "the PyTorch of the local Python environment, which needs a CUDA build")
        }
        def (major, minor) = (nextflow_version.tokenize('.') + ['0', '0'])[0..1].collect { part ->
            part.replaceAll(/\D.*/, '') ?: '0'
        }
        if (major.toInteger() < 26 || (major.toInteger() == 26 && minor.toInteger() < 10)) {
            warnings << ("Nextflow ${nextflow_version}: its local executor does not give each GPU task a " +
                         "device of its own (Nextflow 26.10 does, from CUDA_VISIBLE_DEVICES), so parallel " +
                         "IMPUTE_TRAIN tasks on one machine may share a GPU; grid and cloud executors are " +
                         "not affected (docs/usage.md, GPUs)")
        }
    }
    return [errors: errors, warnings: warnings]
}

// ---- --method_params ----------------------------------------------------------------------------------

// {"method": {"key": value, ...}, ...} -> map of method -> map, checked; every value becomes one --param.
def readMethodParams(path) {
    if (!path) {
        return [:]
    }
    def parsed = new groovy.json.JsonSlurper().parseText(file(path, checkIfExists: true).text)
    if (!(parsed instanceof Map) || parsed.any { _method, values -> !(values instanceof Map) }) {
        error("--method_params ${path}: expected a JSON object of objects keyed by method, e.g. {\"none\": {}}")
    }
    return parsed.collectEntries { method, values -> [method, new LinkedHashMap(values)] }
}

// ---- the parameter summary ----------------------------------------------------------------------------

// Parameters that differ from the defaults, by group (trace_report_suffix, the start time that
// nextflow.config sets on every run, is not a change).
def changedParameters(schema, parameters) {
    def groups = [:]
    schema['$defs'].each { _group_name, group ->
        def changed = (group.properties ?: [:]).findAll { name, spec ->
            def default_value = spec.default?.toString()?.replace('${projectDir}', workflow.projectDir.toString())
            name != 'trace_report_suffix' && parameters[name] != null && parameters[name].toString() != default_value
        }
        if (changed) {
            groups[group.title] = changed.collectEntries { name, _spec -> [name, parameters[name]] }
        }
    }
    return groups
}

def summaryLog(schema, parameters) {
    def rule = '-' * 72
    def lines = [rule, "${workflow.manifest.name} ${workflow.manifest.version}", rule]
    def core = [
        runName   : workflow.runName,
        launchDir : workflow.launchDir,
        workDir   : workflow.workDir,
        projectDir: workflow.projectDir,
        profile   : workflow.profile,
        container : workflow.containerEngine ?: 'none (local software)'
    ]
    lines << 'Core Nextflow options'
    core.each { name, value -> lines << "  ${name.padRight(20)}: ${value}" }
    changedParameters(schema, parameters).each { title, values ->
        lines << title
        values.each { name, value -> lines << "  ${name.padRight(20)}: ${value}" }
    }
    lines << rule
    return lines.join('\n')
}

def summaryMultiqc(schema, parameters) {
    def rows = changedParameters(schema, parameters).collectMany { _title, values ->
        values.collect { name, value -> "        <dt>${escapeHtml(name)}</dt><dd><samp>${escapeHtml(value)}</samp></dd>" }
    }
    return [
        "id: 'graphimpute-summary'",
        "description: ' - the parameters of this run that differ from the defaults.'",
        "section_name: 'graphimpute workflow summary'",
        "plot_type: 'html'",
        'data: |',
        '    <dl class="dl-horizontal">',
        rows.join('\n'),
        '    </dl>'
    ].join('\n')
}

def escapeHtml(value) {
    return value.toString().replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
}
