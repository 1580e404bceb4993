/*
 * Start-up: --version, --help (from nextflow_schema.json), parameter checks against the schema, the
 * parameter summary (log and MultiQC), and --method_params. Plain Groovy, no plugin: the pipeline
 * runs on clusters that cannot download one.
 */

workflow PIPELINE_INITIALISATION {
    main:
    schema = readSchema("${projectDir}/nextflow_schema.json")

    if (params.version) {
        log.info("${workflow.manifest.name} ${workflow.manifest.version}")
        System.exit(0)
    }
    if (params.help) {
        log.info(helpMessage(schema, params.help))
        System.exit(0)
    }
    if (params.validate_params) {
        validateParameters(schema, params)
    }
    log.info(summaryLog(schema, params))
    if (params.use_gpu && !workflow.containerEngine) {
        log.warn("--use_gpu without a container engine: IMPUTE asks for CUDA from the local Python environment")
    }

    emit:
    samplesheet   = channel.value(file(params.input, checkIfExists: true))
    methods       = channel.value(params.methods.toString())
    method_params = channel.value(readMethodParams(params.method_params))
    summary_mqc   = channel.value(summaryMultiqc(schema, params))
}

// ---- the schema ---------------------------------------------------------------------------------------

def readSchema(path) {
    return new groovy.json.JsonSlurper().parseText(file(path, checkIfExists: true).text)
}

// Every parameter's definition, by name, over all groups.
def schemaProperties(schema) {
    def properties = [:]
    (schema['$defs'] ?: [:]).each { group_name, group -> properties.putAll(group.properties ?: [:]) }
    properties.putAll(schema.properties ?: [:])
    return properties
}

def schemaRequired(schema) {
    def required = [] + (schema.required ?: [])
    (schema['$defs'] ?: [:]).each { group_name, group -> required.addAll(group.required ?: []) }
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
    schema['$defs'].each { group_name, group ->
        def shown = (group.properties ?: [:]).findAll { name, spec -> !spec.hidden }
        if (shown) {
            lines << "${group.title}:"
            shown.each { name, spec -> lines << describeParameter(name, spec, false) }
            lines << ''
        }
    }
    lines << 'Run with --help NAME (for example --help methods) for the full help text of one parameter,'
    lines << 'hidden ones included. Profiles: docker, singularity, apptainer, conda, gpu, test, test_full, debug.'
    return lines.join('\n')
}

def describeParameter(name, spec, full) {
    def type = spec.type instanceof List ? spec.type.join('|') : spec.type
    def line = "  --${name.padRight(20)} [${type}] ${spec.description ?: ''}"
    if (spec.enum) {
        line += " One of: ${spec.enum.join(', ')}."
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
        error("Invalid parameters:\n" + problems.collect { problem -> "  * ${problem}" }.join('\n'))
    }
}

def camelCase(name) {
    return name.replaceAll(/[_-]([a-z])/) { match, letter -> letter.toUpperCase() }
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
    if (spec.enum && !(text in spec.enum.collect { choice -> choice.toString() })) {
        return "--${name} must be one of ${spec.enum.join(', ')}, got '${text}'"
    }
    if (spec.pattern && !(text ==~ spec.pattern)) {
        return "--${name} '${text}' does not match ${spec.pattern}${spec.errorMessage ? ': ' + spec.errorMessage : ''}"
    }
    if (spec.exists && spec.format in ['file-path', 'directory-path'] && !file(text).exists()) {
        return "--${name} ${text} does not exist"
    }
    return null
}

// ---- --method_params ----------------------------------------------------------------------------------

// {"method": {"key": value, ...}, ...} -> map of method -> map, checked; every value becomes one --param.
def readMethodParams(path) {
    if (!path) {
        return [:]
    }
    def parsed = new groovy.json.JsonSlurper().parseText(file(path, checkIfExists: true).text)
    if (!(parsed instanceof Map) || parsed.any { method, values -> !(values instanceof Map) }) {
        error("--method_params ${path}: expected a JSON object of objects keyed by method, e.g. {\"none\": {}}")
    }
    return parsed.collectEntries { method, values -> [method, new LinkedHashMap(values)] }
}

// ---- the parameter summary ----------------------------------------------------------------------------

// Parameters that differ from the defaults, by group.
def changedParameters(schema, parameters) {
    def groups = [:]
    schema['$defs'].each { group_name, group ->
        def changed = (group.properties ?: [:]).findAll { name, spec ->
            def default_value = spec.default?.toString()?.replace('${projectDir}', workflow.projectDir.toString())
            parameters[name] != null && parameters[name].toString() != default_value
        }
        if (changed) {
            groups[group.title] = changed.collectEntries { name, spec -> [name, parameters[name]] }
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
    def rows = changedParameters(schema, parameters).collectMany { title, values ->
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
