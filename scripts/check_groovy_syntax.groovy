/*
 * Parse each file given as Groovy 4 (DSL2 Nextflow scripts and configs are Groovy syntax) without
 * running or type-checking it: compile only to the CONVERSION phase, which reports syntax errors.
 * Prints "OK <file>" or "ERROR <file>:<line>:<column>: <message>"; exits 1 when any file fails.
 *   java -cp '<groovy lib dir>/*' groovy.ui.GroovyMain scripts/check_groovy_syntax.groovy FILE...
 */
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

int failed = 0
args.each { String path ->
    def unit = new CompilationUnit(new CompilerConfiguration())
    unit.addSource(new File(path))
    try {
        unit.compile(Phases.CONVERSION)
        println "OK ${path}"
    } catch (MultipleCompilationErrorsException err) {
        failed++
        err.errorCollector.errors.each { message ->
            if (message instanceof SyntaxErrorMessage) {
                def cause = message.cause
                println "ERROR ${path}:${cause.line}:${cause.startColumn}: ${cause.originalMessage}"
            } else {
                println "ERROR ${path}: ${message}"
            }
        }
    }
}
System.exit(failed ? 1 : 0)
