"""Static checks of the Nextflow pipeline, for machines without Nextflow (see tests/test_nextflow_static.py).

Each ``check_*`` takes the repository root and returns a list of problems (empty = fine), so the tests
run them on the repository and on copies with a planted mistake. The .nf files are read with a small
scanner that knows Groovy's comments and strings; it is enough for this pipeline's plain DSL2 style,
not a Groovy parser (the Groovy 4 parse is ``check_groovy_syntax``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import click

# The pipeline's steps in DAG order (INPUT_CHECK is the samplesheet subworkflow).
STEP_ORDER = ("INPUT_CHECK", "QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "EVALUATE", "MULTIQC")
BENCHMARK_ONLY = ("MASK", "EVALUATE")
# Where each step's inputs may come from (TAKE: the workflow's own inputs) and which it must have.
ALLOWED_SOURCES = {
    "INPUT_CHECK": {"TAKE"},
    "QC": {"INPUT_CHECK"},
    "NORMALISE": {"QC"},
    "MASK": {"NORMALISE"},
    "GRAPH": {"NORMALISE", "MASK", "INPUT_CHECK"},
    "IMPUTE": {"GRAPH", "INPUT_CHECK", "TAKE"},
    "EVALUATE": {"IMPUTE", "MASK"},
    "MULTIQC": set(STEP_ORDER) | {"TAKE"},
}
REQUIRED_SOURCES = {
    "QC": {"INPUT_CHECK"},
    "NORMALISE": {"QC"},
    "MASK": {"NORMALISE"},
    "GRAPH": {"NORMALISE", "MASK"},
    "IMPUTE": {"GRAPH"},
    "EVALUATE": {"IMPUTE", "MASK"},
    "MULTIQC": {"QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "EVALUATE"},
}
# Processes that also call a third-party tool (besides graphimpute wrappers), with that tool's click command.
THIRD_PARTY = {"MULTIQC": ("multiqc", "multiqc.multiqc:run_cli")}
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "for", "do", "done", "cat", "cp", "touch", "mkdir", "echo"}
PUBLISH_LAYOUT = {"QC": "qc", "NORMALISE": "normalise", "MASK": "mask", "GRAPH": "graph", "IMPUTE": "impute",
                  "EVALUATE": "evaluate", "MULTIQC": "multiqc", "SAMPLESHEET_CHECK": "pipeline_info"}

NF_TREE = ("main.nf", "nextflow.config", "nextflow_schema.json", "nf-test.config", "conf", "modules", "subworkflows",
           "workflows", "bin", "assets", "tests/nextflow")


# ---- reading Groovy ------------------------------------------------------------------------------------

def mask_groovy(text: str, *, keep_strings: bool = False) -> str:
    """``text`` with comments (and, unless ``keep_strings``, string contents and interpolations) replaced
    by spaces; newlines and every other position are kept, so offsets and line numbers still match."""
    out = list(text)
    n = len(text)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    def skip_string(i: int) -> int:
        """i at an opening quote; returns the index just past the closing quote."""
        for quote in ('"""', "'''", '"', "'"):
            if text.startswith(quote, i):
                break
        j = i + len(quote)
        while j < n:
            if text[j] == "\\":
                j += 2
                continue
            if quote[0] == '"' and text.startswith("${", j):
                j = skip_code(j + 2, closing="}")
                continue
            if text.startswith(quote, j):
                return j + len(quote)
            if len(quote) == 1 and text[j] == "\n":
                return j  # unterminated one-line string: stop at the line end
            j += 1
        return n

    def skip_code(i: int, closing: str) -> int:
        """Code inside ${...}: returns the index just past its closing brace."""
        depth = 0
        while i < n:
            c = text[i]
            if c in "\"'":
                i = skip_string(i)
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    return i + 1
                depth -= 1
            i += 1
        return n

    i = 0
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif text[i] in "\"'":
            end = skip_string(i)
            if not keep_strings:
                quote = 3 if text.startswith(('"""', "'''"), i) else 1
                blank(i + quote, end - quote)
            i = end
        else:
            i += 1
    return "".join(out)


def matching_brace(masked: str, open_index: int) -> int:
    """Index of the brace closing the one at ``open_index`` (in masked text)."""
    depth = 0
    for k in range(open_index, len(masked)):
        if masked[k] == "{":
            depth += 1
        elif masked[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError(f"unbalanced brace at offset {open_index}")


def blocks(text: str, keyword: str) -> dict[str, str]:
    """``keyword NAME { body }`` blocks (process, workflow) by name; the unnamed workflow is ''."""
    masked = mask_groovy(text)
    found = {}
    for m in re.finditer(rf"(?m)^\s*{keyword}\s+(\w*)\s*\{{", masked):
        end = matching_brace(masked, m.end() - 1)
        found[m.group(1)] = text[m.end():end]
    return found


def sections(body: str, names=("take", "main", "emit", "input", "output", "when", "script", "stub", "exec")) -> dict:
    """The labelled sections (``input:``, ``script:`` ...) of a process or workflow body, at its top level."""
    masked = mask_groovy(body)
    depth, starts = 0, []
    label = re.compile(rf"^[ \t]*({'|'.join(names)}):[ \t]*$", re.M)
    labels = {m.start(): m for m in label.finditer(masked)}
    for k, c in enumerate(masked):
        if k in labels and depth == 0:
            starts.append(labels[k])
        depth += (c == "{") - (c == "}")
    result = {"directives": body[: starts[0].start()] if starts else body}
    for this, following in zip(starts, starts[1:] + [None]):
        result[this.group(1)] = body[this.end(): following.start() if following else len(body)]
    return result


@dataclass
class Process:
    name: str
    path: Path
    body: str
    parts: dict = field(default_factory=dict)

    @property
    def emits(self) -> set[str]:
        return set(re.findall(r"emit:\s*(\w+)", self.parts.get("output", "")))

    @property
    def labels(self) -> set[str]:
        return set(re.findall(r"\blabel\s+['\"](\w+)['\"]", self.parts["directives"]))


def processes(root: Path) -> dict[str, Process]:
    found = {}
    for path in sorted(root.glob("modules/**/*.nf")):
        for name, body in blocks(path.read_text(), "process").items():
            found[name] = Process(name, path, body, sections(body))
    return found


def nf_files(root: Path) -> list[Path]:
    """The pipeline's .nf files (not those in Nextflow's work/ or nf-test's folders, nor tests/)."""
    found = []
    for path in root.rglob("*.nf"):
        parts = path.relative_to(root).parts
        if not {".nf-test", "work", ".nextflow"} & set(parts) and parts[0] != "tests":
            found.append(path)
    return sorted(found)


def config_files(root: Path) -> list[Path]:
    return [root / "nextflow.config", *sorted((root / "conf").glob("*.config"))]


# ---- the Groovy 4 parse ----------------------------------------------------------------------------------

def groovy_jar_dir() -> Path | None:
    base = Path(os.environ.get("GRAPHIMPUTE_GROOVY_DIR", Path.home() / ".cache" / "graphimpute" / "groovy"))
    lib = base / "node_modules" / "npm-groovy-lint" / "lib" / "java" / "groovy" / "lib"
    return lib if list(lib.glob("groovy-4.*.jar")) else None


def groovy_unavailable() -> str | None:
    """Why the Groovy parse cannot run here, or None."""
    if shutil.which("java") is None:
        return "no java on PATH (Java 17 runs the Groovy 4 parser)"
    if groovy_jar_dir() is None:
        return ("no Groovy 4 jars: run scripts/install_groovy_parser.sh (npm package npm-groovy-lint), "
                "or set GRAPHIMPUTE_GROOVY_DIR to where it installed them")
    return None


def nf_test_files(root: Path) -> list[Path]:
    return sorted(root.glob("**/*.nf.test")) + [p for p in [root / "nf-test.config"] if p.is_file()]


def groovy_command(*arguments: str) -> list[str]:
    """java running GroovyMain; fast start-up settings (a short-lived JVM), only the jars needed."""
    jars = [str(jar) for jar in sorted(groovy_jar_dir().glob("groovy-*.jar"))
            if re.fullmatch(r"groovy-(json-)?4[\d.]*\.jar", jar.name)]
    return ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", os.pathsep.join(jars),
            "groovy.ui.GroovyMain", *arguments]


def check_groovy_syntax(root: Path) -> list[str]:
    """Every .nf, .config and nf-test file parses as Groovy 4 (the language DSL2 and nf-test use)."""
    files = [str(p) for p in nf_files(root) + config_files(root) + nf_test_files(root)]
    checker = Path(__file__).resolve().parents[1] / "scripts" / "check_groovy_syntax.groovy"
    done = subprocess.run(groovy_command(str(checker), *files), capture_output=True, text=True, timeout=300)
    problems = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    if done.returncode != 0 and not problems:
        problems.append(f"Groovy parser failed to run: {done.stderr.strip()[:500]}")
    return problems


# ---- processes call existing subcommands with existing options -------------------------------------------

def wrapper_subcommand(root: Path, wrapper: str) -> str | None:
    path = root / "bin" / wrapper
    if not path.is_file():
        return None
    m = re.search(r"""main\(\[\s*["']([\w-]+)["']""", path.read_text())
    return m.group(1) if m else None


def click_options(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def ext_args_options(root: Path, process: str) -> set[str]:
    """The --options that conf/modules.config passes to ``process`` through ext.args."""
    text = (root / "conf" / "modules.config").read_text()
    masked, readable = mask_groovy(text), mask_groovy(text, keep_strings=True)
    options = set()
    for m in re.finditer(rf"withName:\s*['\"]?{process}['\"]?\s*\{{", readable):
        block = text[m.end(): matching_brace(masked, m.end() - 1)]
        args = re.search(r"ext\.args\s*=(.*?)(?=\n\s*(?:publishDir|ext\.\w+)\s*=|\Z)", block, re.S)
        if args:
            options |= set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", args.group(1)))
    return options


def script_commands(process: Process) -> list[tuple[str, set[str]]]:
    """(program, --options) of every command in the process script, with ${var} expanded from the
    script's own ``def var = ...`` and ${args} from ext.args (added by the caller)."""
    script = process.parts.get("script", "")
    strings = re.findall(r'"""(.*?)"""', script, re.S)
    if not strings:
        return []
    shell = strings[-1]
    code = mask_groovy(script[: script.rfind('"""' + shell)], keep_strings=True)
    defs = {}
    for m in re.finditer(r"\bdef\s+(\w+)\s*=(.*?)(?=\n\s*(?:def\s|prefix\s*=)|\Z)", code, re.S):
        defs[m.group(1)] = set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", m.group(2)))
    commands, heredoc = [], None
    for command in re.sub(r"\\\\\n", " ", shell).splitlines():
        words = command.split()
        if heredoc:  # the lines of a here-document are text, not commands
            heredoc = None if command.strip() == heredoc else heredoc
            continue
        opening = re.search(r"<<-?\s*'?(\w+)'?", command)
        if opening:
            heredoc = opening.group(1)
        if not words or words[0] in SHELL_WORDS or "=" in words[0]:
            continue  # shell syntax, file plumbing and variable assignments
        options = set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", re.sub(r"\$\([^)]*\)", "", command)))
        for var in re.findall(r"\$\{(\w+)\}", command):
            options |= defs.get(var, set())
        commands.append((words[0], options, "${args}" in command))
    return commands


def check_process_commands(root: Path) -> tuple[list[str], list[str]]:
    """Every process script calls bin/ wrappers of subcommands that exist, with options that exist.

    Returns (problems, notes): notes say what could not be checked here (a third-party tool not installed)."""
    from graphimpute.cli import main as cli

    problems, pending = [], []
    for name, process in processes(root).items():
        commands = script_commands(process)
        if not commands:
            problems.append(f"{name}: no script block with a command")
            continue
        called = [program for program, _, _ in commands]
        for program, options, takes_args in commands:
            if takes_args:
                options = options | ext_args_options(root, name)
            if name in THIRD_PARTY and program == THIRD_PARTY[name][0]:
                tool, target = THIRD_PARTY[name]
                module, attr = target.split(":")
                try:
                    command = getattr(__import__(module, fromlist=[attr]), attr)
                except ImportError:
                    pending.append(f"{name}: {tool} is not installed here; its options were not checked")
                    continue
            else:
                if not program.startswith("graphimpute_"):
                    problems.append(f"{name}: calls {program!r}, not a bin/graphimpute_* wrapper")
                    continue
                sub = wrapper_subcommand(root, program)
                if sub is None:
                    problems.append(f"{name}: {program} is not a bin/ wrapper of a graphimpute subcommand")
                    continue
                command = cli.commands.get(sub)
                if command is None:
                    problems.append(f"{name}: {program} forwards to `graphimpute {sub}`, which does not exist")
                    continue
            unknown = sorted(options - click_options(command))
            if unknown:
                problems.append(f"{name}: {program} is given {', '.join(unknown)}, which it does not take")
        if not any(p.startswith("graphimpute_") for p in called):
            problems.append(f"{name}: calls no bin/graphimpute_* wrapper")
    return problems, pending


def check_bin_wrappers(root: Path) -> list[str]:
    """bin/ holds only executable thin wrappers: a few lines that forward to graphimpute.cli."""
    from graphimpute.cli import main as cli

    problems = []
    for path in sorted((root / "bin").iterdir()):
        code = [line for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#") and not line.lstrip().startswith('"""')]
        if not os.access(path, os.X_OK):
            problems.append(f"bin/{path.name}: not executable")
        if not path.name.startswith("graphimpute_"):
            problems.append(f"bin/{path.name}: only graphimpute_* wrappers belong in bin/")
        sub = wrapper_subcommand(root, path.name)
        if len(code) > 4 or sub is None:
            problems.append(f"bin/{path.name}: not a thin wrapper (import sys, graphimpute.cli.main; forward argv)")
        elif sub not in cli.commands:
            problems.append(f"bin/{path.name}: forwards to `graphimpute {sub}`, which does not exist")
    return problems


# ---- params: used = defined in nextflow.config = described in the schema -----------------------------

def _literal(value: str):
    value = value.strip().rstrip(",")
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d*", value):
        return float(value)
    if value[:1] in "'\"" and value[-1:] == value[:1]:
        return value[1:-1]
    return value


def config_params(path: Path) -> dict:
    """Name -> default, from the ``params { }`` blocks of a config file."""
    text = path.read_text()
    masked = mask_groovy(text)
    found = {}
    for m in re.finditer(r"(?m)^\s*params\s*\{", masked):
        body = text[m.end(): matching_brace(masked, m.end() - 1)]
        for line, masked_line in zip(body.splitlines(), mask_groovy(body).splitlines()):
            assignment = re.match(r"\s*(\w+)\s*=", masked_line)
            if assignment:
                found[assignment.group(1)] = _literal(line.split("=", 1)[1].split("//")[0])
    return found


def config_param_settings(path: Path) -> set[str]:
    """Every param a config file sets: in params blocks and as ``params.x = ...`` (in profiles)."""
    masked = mask_groovy(path.read_text())
    return set(config_params(path)) | set(re.findall(r"(?m)^\s*params\.(\w+)\s*=", masked))


def schema_params(root: Path) -> dict:
    schema = json.loads((root / "nextflow_schema.json").read_text())
    properties = dict(schema.get("properties", {}))
    for group in schema.get("$defs", {}).values():
        properties.update(group.get("properties", {}))
    return properties


def used_params(root: Path) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in nf_files(root) + config_files(root):
        text = mask_groovy(path.read_text(), keep_strings=True)
        for name in re.findall(r"\bparams\.(\w+)", text):
            used.setdefault(name, set()).add(str(path.relative_to(root)))
        for name in re.findall(r"\bparams\[['\"](\w+)['\"]\]", text):
            used.setdefault(name, set()).add(str(path.relative_to(root)))
    return used


def check_params(root: Path) -> list[str]:
    problems = []
    defined = config_params(root / "nextflow.config")
    described = schema_params(root)
    for name, files in sorted(used_params(root).items()):
        if name not in defined:
            problems.append(f"params.{name} (used in {', '.join(sorted(files))}) is not defined in nextflow.config")
    for name in sorted(set(defined) - set(described)):
        problems.append(f"params.{name} is defined in nextflow.config but not described in nextflow_schema.json")
    for name in sorted(set(described) - set(defined)):
        problems.append(f"--{name} is in nextflow_schema.json but not defined in nextflow.config")
    for name, spec in sorted(described.items()):
        if not spec.get("description"):
            problems.append(f"--{name} has no description in nextflow_schema.json")
        if name in defined and defined[name] is not None and spec.get("default") != defined[name]:
            problems.append(f"--{name}: default {defined[name]!r} in nextflow.config, {spec.get('default')!r} "
                            "in nextflow_schema.json")
    for path in config_files(root):
        for name in sorted(config_param_settings(path) - set(defined)):
            problems.append(f"{path.relative_to(root)} sets params.{name}, which nextflow.config does not define")
    return problems


# ---- config selectors ---------------------------------------------------------------------------------

def check_selectors(root: Path) -> list[str]:
    """Every withName matches a process; every label a module uses has resources in base.config."""
    problems = []
    names = set(processes(root))
    defined_labels = set()
    for path in config_files(root):
        text = mask_groovy(path.read_text(), keep_strings=True)
        for selector in re.findall(r"withName:\s*['\"]?([^'\"{\s]+)['\"]?\s*\{", text):
            for name in selector.split("|"):
                if name.split(":")[-1] not in names:
                    problems.append(f"{path.relative_to(root)}: withName '{name}' matches no process")
        defined_labels |= set(re.findall(r"withLabel:\s*['\"]?(\w+)", text))
    for name, process in sorted(processes(root).items()):
        for label in sorted(process.labels - defined_labels):
            problems.append(f"{name}: label '{label}' is not configured in conf/base.config")
    return problems


# ---- includes and emits -------------------------------------------------------------------------------

def definitions(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Process and workflow names -> (kind, emit names)."""
    found = {name: ("process", p.emits) for name, p in processes(root).items()}
    for path in nf_files(root):
        for name, body in blocks(path.read_text(), "workflow").items():
            if name:
                emit = sections(body).get("emit", "")
                found[name] = ("workflow", set(re.findall(r"(?m)^\s*(\w+)\s*=", mask_groovy(emit))))
    return found


def check_includes_and_emits(root: Path) -> list[str]:
    problems = []
    known = definitions(root)
    for path in nf_files(root):
        text = path.read_text()
        masked = mask_groovy(text, keep_strings=True)
        for names, target in re.findall(r"include\s*\{([^}]*)\}\s*from\s*['\"]([^'\"]+)['\"]", masked):
            where = (path.parent / target).resolve()
            source = where.with_suffix(".nf") if where.with_suffix(".nf").is_file() else where / "main.nf"
            if not source.is_file():
                problems.append(f"{path.relative_to(root)}: include from '{target}': no such module")
                continue
            defined = set(blocks(source.read_text(), "process")) | set(blocks(source.read_text(), "workflow"))
            for name in re.split(r"[;\n]", names):
                original = name.split(" as ")[0].strip()
                if original and original not in defined:
                    problems.append(f"{path.relative_to(root)}: '{original}' is not defined in {target}")
        for name, emit in re.findall(r"\b([A-Z][A-Z0-9_]*)\.out\.(\w+)", mask_groovy(text)):
            if name not in known:
                problems.append(f"{path.relative_to(root)}: {name}.out.{emit}: no process or workflow {name}")
            elif emit not in known[name][1]:
                problems.append(f"{path.relative_to(root)}: {name}.out.{emit}: {name} emits "
                                f"{', '.join(sorted(known[name][1]))}")
    return problems


def _arity(root: Path) -> dict[str, int]:
    """Inputs of every process and take: items of every workflow, by name."""
    arity = {}
    for name, process in processes(root).items():
        arity[name] = len(re.findall(r"(?m)^\s*(?:tuple|path|val|env|stdin|each|file)\b",
                                     mask_groovy(process.parts.get("input", ""))))
    for path in nf_files(root):
        for name, body in blocks(path.read_text(), "workflow").items():
            if name:
                take = mask_groovy(sections(body).get("take", ""))
                arity[name] = len(re.findall(r"(?m)^\s*\w+\s*$", take))
    return arity


def check_call_arity(root: Path) -> list[str]:
    """Every call of a process or workflow passes as many arguments as it declares inputs."""
    problems = []
    arity = _arity(root)
    for path in nf_files(root):
        masked = mask_groovy(path.read_text())
        for m in re.finditer(r"(?<![.\w])([A-Z][A-Z0-9_]*)\s*\(", masked):
            name = m.group(1)
            if name not in arity:
                continue
            depth, args, empty = 0, 0, True
            for k in range(m.end() - 1, len(masked)):
                c = masked[k]
                if c in "([{":
                    depth += 1
                elif c in ")]}":
                    depth -= 1
                    if depth == 0:
                        break
                elif c == "," and depth == 1:
                    args += 1
                elif depth >= 1 and not c.isspace():
                    empty = False
            given = 0 if empty and args == 0 else args + 1
            if given != arity[name]:
                line = masked[: m.start()].count("\n") + 1
                problems.append(f"{path.relative_to(root)}:{line}: {name} is called with {given} argument(s), "
                                f"it takes {arity[name]}")
    return problems


# ---- the DAG, from the workflow's channel wiring --------------------------------------------------------

def _statements(body: str) -> list[tuple[str, tuple[str, ...]]]:
    """(statement, enclosing if-conditions) of a workflow body, from masked text (strings blanked);
    a statement runs on while brackets are open or the next line starts with '.'."""
    masked = mask_groovy(body, keep_strings=False)
    lines = masked.splitlines()
    statements, conditions, current, depth = [], [], "", 0
    for k, line in enumerate(lines):
        stripped = line.strip()
        if not current:
            opening = re.match(r"if\s*\((.*)\)\s*\{$", stripped)
            if opening:
                conditions.append(opening.group(1).strip())
                continue
            if stripped == "}" and conditions:
                conditions.pop()
                continue
            if re.match(r"\}\s*else\s*\{$", stripped) and conditions:
                conditions[-1] = f"!({conditions[-1]})"
                continue
        current += " " + stripped
        depth += sum(stripped.count(c) for c in "([{") - sum(stripped.count(c) for c in ")]}")
        following = next((rest.strip() for rest in lines[k + 1:] if rest.strip()), "")
        if depth == 0 and not following.startswith("."):
            if current.strip():
                statements.append((current.strip(), tuple(conditions)))
            current = ""
    return statements


def workflow_dag(root: Path) -> tuple[dict[str, set[str]], dict[str, tuple[str, ...]]]:
    """{step: the steps its inputs come from} and {step: the conditions it is called under}."""
    body = blocks((root / "workflows" / "graphimpute.nf").read_text(), "workflow")["GRAPHIMPUTE"]
    parts = sections(body)
    deps: dict[str, set[str]] = {name: {"TAKE"} for name in re.findall(r"(?m)^\s*(\w+)", mask_groovy(parts["take"]))}
    sources: dict[str, set[str]] = {}
    called: dict[str, tuple[str, ...]] = {}

    def refs(expression: str) -> set[str]:
        found = set(re.findall(r"\b([A-Z][A-Z0-9_]*)\.out\b", expression))
        for word in re.findall(r"\b[a-z]\w*\b", expression):
            found |= deps.get(word, set())
        return found

    for statement, conditions in _statements(parts["main"]):
        assignment = re.match(r"^(\w+)\s*=(?!=)\s*(.*)$", statement, re.S)
        call = re.match(r"^([A-Z][A-Z0-9_]*)\s*\((.*)\)$", statement, re.S)
        if assignment:
            deps.setdefault(assignment.group(1), set()).update(refs(assignment.group(2)))
        elif call:
            sources.setdefault(call.group(1), set()).update(refs(call.group(2)))
            called[call.group(1)] = conditions
    return sources, called


def check_dag(root: Path) -> list[str]:
    problems = []
    sources, called = workflow_dag(root)
    order = {name: k for k, name in enumerate(STEP_ORDER)}
    for step in STEP_ORDER:
        if step not in sources:
            problems.append(f"{step} is not called in workflows/graphimpute.nf")
    for step, inputs in sorted(sources.items()):
        if step not in order:
            problems.append(f"{step} is not a step of the DAG {' -> '.join(STEP_ORDER)}")
            continue
        for source in sorted(inputs - ALLOWED_SOURCES[step]):
            problems.append(f"{step} takes input from {source}; allowed: {', '.join(sorted(ALLOWED_SOURCES[step]))}")
        for source in sorted(REQUIRED_SOURCES.get(step, set()) - inputs):
            problems.append(f"{step} does not take input from {source}")
        for source in inputs & set(order):
            if order[source] >= order[step]:
                problems.append(f"{source} -> {step} runs against the DAG order")
    for step, conditions in sorted(called.items()):
        benchmark = any(re.fullmatch(r"params\.benchmark", c) for c in conditions)
        if step in BENCHMARK_ONLY and not benchmark:
            problems.append(f"{step} must run only under `if (params.benchmark)`")
        if step not in BENCHMARK_ONLY and conditions:
            problems.append(f"{step} runs only under {' and '.join(conditions)}; it must always run")
    return problems


# ---- module conventions -------------------------------------------------------------------------------

def meta_yml(path: Path) -> tuple[str, set[str]]:
    """(name, output names) of an nf-core meta.yml: its top-level ``name:`` and the ``- key:`` items
    of its ``output:`` list (read by hand: PyYAML is not a dependency of the project)."""
    text = path.read_text()
    name = re.search(r"(?m)^name:\s*['\"]?([\w-]+)", text)
    output = re.search(r"(?ms)^output:\s*\n(.*?)(?=^[A-Za-z]|\Z)", text)
    outputs = set(re.findall(r"(?m)^\s{0,2}-\s+(\w+):", output.group(1))) if output else set()
    return (name.group(1) if name else ""), outputs


def check_module_conventions(root: Path) -> list[str]:
    problems = []
    for name, process in sorted(processes(root).items()):
        where = process.path.relative_to(root)
        directives, script = process.parts["directives"], process.parts.get("script", "")
        takes_meta = "val(meta)" in process.parts.get("input", "")
        if takes_meta and not re.search(r"\btag\s+\"\$\{?meta\.id", directives):
            problems.append(f"{name} ({where}): no tag \"$meta.id\"")
        if not any(label.startswith("process_") for label in process.labels):
            problems.append(f"{name} ({where}): no resource label")
        if "task.ext.when == null || task.ext.when" not in process.parts.get("when", ""):
            problems.append(f"{name} ({where}): no `when: task.ext.when == null || task.ext.when`")
        if "task.ext.args" not in script:
            problems.append(f"{name} ({where}): does not pass task.ext.args")
        if takes_meta and "task.ext.prefix" not in script:
            problems.append(f"{name} ({where}): does not honour task.ext.prefix")
        if "versions" not in process.emits or "versions.yml" not in script:
            problems.append(f"{name} ({where}): does not emit versions.yml as 'versions'")
        if "stub" not in process.parts:
            problems.append(f"{name} ({where}): no stub: block")
        if ("process_gpu" in process.labels) != (name == "IMPUTE"):
            problems.append(f"{name} ({where}): only IMPUTE carries the process_gpu label")
        meta_yml_path = process.path.parent / "meta.yml"
        if not meta_yml_path.is_file():
            problems.append(f"{name}: no {meta_yml_path.relative_to(root)}")
            continue
        documented_name, documented = meta_yml(meta_yml_path)
        if documented_name.upper() != name:
            problems.append(f"{meta_yml_path.relative_to(root)}: name {documented_name!r} is not {name.lower()}")
        for emit in sorted(process.emits - documented):
            problems.append(f"{meta_yml_path.relative_to(root)}: output '{emit}' is not documented")
    return problems


def check_gpu_scoping(root: Path) -> list[str]:
    """GPU settings live in the process_gpu label only, switched by params.use_gpu: nothing global."""
    problems = []
    base = (root / "conf" / "base.config").read_text()
    masked, readable = mask_groovy(base), mask_groovy(base, keep_strings=True)
    m = re.search(r"withLabel:\s*['\"]?process_gpu['\"]?\s*\{", readable)
    if m is None:
        return ["conf/base.config: no withLabel 'process_gpu' block"]
    block = base[m.end(): matching_brace(masked, m.end() - 1)]
    if not re.search(r"accelerator\s*=\s*\{\s*params\.use_gpu\s*\?\s*1\s*:\s*null\s*\}", block):
        problems.append("process_gpu: accelerator must be { params.use_gpu ? 1 : null }")
    if not re.search(r"ext\.use_gpu\s*=\s*\{\s*params\.use_gpu\s*\}", block):
        problems.append("process_gpu: ext.use_gpu must follow params.use_gpu")
    options = re.search(r"containerOptions\s*=\s*\{(.*)\}", block, re.S)
    body = options.group(1) if options else ""
    if not (re.search(r"'docker'.*?'--gpus all'", body, re.S) and re.search(r"'singularity'.*?'--nv'", body, re.S)
            and "'apptainer'" in body and "params.use_gpu" in body):
        problems.append("process_gpu: containerOptions must give --gpus all (docker) and --nv "
                        "(singularity, apptainer) when params.use_gpu is set")
    for path in config_files(root):
        text = mask_groovy(path.read_text(), keep_strings=True)
        if re.search(r"runOptions\s*=.*(--gpus|--nv)", text):
            problems.append(f"{path.relative_to(root)}: GPU options in a global runOptions reach every process")
    gpu_profile = re.search(r"(?m)^\s*gpu\s*\{([^}]*)\}", mask_groovy((root / "nextflow.config").read_text(),
                                                                       keep_strings=True))
    if not gpu_profile or not re.search(r"params\.use_gpu\s*=\s*true", gpu_profile.group(1)):
        problems.append("nextflow.config: the gpu profile must set params.use_gpu = true")
    impute = processes(root).get("IMPUTE")
    if impute and "process_gpu" not in impute.labels:
        problems.append("IMPUTE: no process_gpu label, so it never gets a GPU")
    if impute and "task.ext.use_gpu ? params.container_gpu : params.container" not in impute.parts["directives"]:
        problems.append("IMPUTE: the container must be params.container_gpu when task.ext.use_gpu")
    return problems


def check_publish_layout(root: Path) -> list[str]:
    """Each step publishes to the folder `graphimpute run` writes it to."""
    text = (root / "conf" / "modules.config").read_text()
    masked, readable = mask_groovy(text), mask_groovy(text, keep_strings=True)
    problems = []
    for name, folder in PUBLISH_LAYOUT.items():
        m = re.search(rf"withName:\s*['\"]?{name}['\"]?\s*\{{", readable)
        if m is None:
            problems.append(f"conf/modules.config: no withName '{name}' block")
            continue
        block = text[m.end(): matching_brace(masked, m.end() - 1)]
        if f'"${{params.outdir}}/{folder}"' not in block:
            problems.append(f"conf/modules.config: {name} does not publish to ${{params.outdir}}/{folder}")
    return problems


# ---- running the pipeline's own Groovy functions ----------------------------------------------------------

GROOVY_STAND_INS = r"""
// Stand-ins for what Nextflow provides to the functions under test: file(), error(), log, workflow.
def warnings = []
binding.setVariable('file', { Object[] arguments ->
    def path = arguments.find { argument -> !(argument instanceof Map) }
    def options = arguments.find { argument -> argument instanceof Map } ?: [:]
    def found = new File(path.toString())
    if (options.checkIfExists && !found.exists()) { throw new RuntimeException("missing file ${path}") }
    return found
})
binding.setVariable('error', { String message -> throw new IllegalStateException(message) })
binding.setVariable('log', [warn: { String message -> warnings << message }, info: { String message -> }])
binding.setVariable('workflow', [manifest: [name: 'graphimpute', version: '0.1.0', description: 'test'],
                                 projectDir: new File('.').absoluteFile, runName: 'test', launchDir: '.',
                                 workDir: 'work', profile: 'test', containerEngine: null])
"""


def run_groovy_functions(root: Path, nf_file: str, driver: str) -> dict:
    """Run the functions of ``nf_file`` (its workflow blocks removed) under stand-ins for Nextflow's
    file(), error(), log and workflow; ``driver`` is Groovy that fills a map ``out``, printed as JSON."""
    import tempfile

    text = (root / nf_file).read_text()
    masked = mask_groovy(text)
    for m in reversed(list(re.finditer(r"(?m)^\s*workflow\s+\w*\s*\{", masked))):
        end = matching_brace(masked, m.end() - 1)
        text = text[: m.start()] + "\n" * text[m.start(): end + 1].count("\n") + text[end + 1:]
    script = text + GROOVY_STAND_INS + "def out = [:]\n" + driver + "\nout.warnings = warnings\n" \
        "println groovy.json.JsonOutput.toJson(out)\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "functions.groovy"
        path.write_text(script)
        done = subprocess.run(groovy_command(str(path)), capture_output=True, text=True, timeout=300, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"Groovy failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
