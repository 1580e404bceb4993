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

# The pipeline's steps in DAG order (INPUT_CHECK is the samplesheet subworkflow). IMPUTE runs the methods
# that train nothing, IMPUTE_TRAIN those that train (the only process with the GPU label).
STEP_ORDER = ("INPUT_CHECK", "QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "IMPUTE_TRAIN", "EVALUATE", "MULTIQC")
IMPUTE_STEPS = ("IMPUTE", "IMPUTE_TRAIN")
GPU_PROCESS = "IMPUTE_TRAIN"
BENCHMARK_ONLY = ("MASK", "EVALUATE")
BENCHMARK_FLAG = "benchmark"  # GRAPHIMPUTE's take: main.nf passes --benchmark, read as a flag
# Where each step's inputs may come from (TAKE: the workflow's own inputs) and which it must have. GRAPH
# takes nothing from the method list (INPUT_CHECK, TAKE): changing --methods must not rerun it.
ALLOWED_SOURCES = {
    "INPUT_CHECK": {"TAKE"},
    "QC": {"INPUT_CHECK"},
    "NORMALISE": {"QC"},
    "MASK": {"NORMALISE"},
    "GRAPH": {"NORMALISE", "MASK"},
    "IMPUTE": {"GRAPH", "INPUT_CHECK", "TAKE"},
    "IMPUTE_TRAIN": {"GRAPH", "INPUT_CHECK", "TAKE"},
    "EVALUATE": {"IMPUTE", "IMPUTE_TRAIN", "MASK", "INPUT_CHECK"},
    "MULTIQC": set(STEP_ORDER) | {"TAKE"},
}
REQUIRED_SOURCES = {
    "QC": {"INPUT_CHECK"},
    "NORMALISE": {"QC"},
    "MASK": {"NORMALISE"},
    "GRAPH": {"NORMALISE", "MASK"},
    "IMPUTE": {"GRAPH"},
    "IMPUTE_TRAIN": {"GRAPH"},
    "EVALUATE": {"IMPUTE", "IMPUTE_TRAIN", "MASK"},
    "MULTIQC": {"QC", "NORMALISE", "MASK", "GRAPH", "IMPUTE", "IMPUTE_TRAIN", "EVALUATE"},
}
# Processes that also call a third-party tool (besides graphimpute wrappers), with that tool's click command.
THIRD_PARTY = {"MULTIQC": ("multiqc", "multiqc.multiqc:run_cli")}
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "for", "do", "done", "cat", "cp", "touch", "mkdir", "echo"}
PUBLISH_LAYOUT = {"QC": "qc", "NORMALISE": "normalise", "MASK": "mask", "GRAPH": "graph", "IMPUTE": "impute",
                  "IMPUTE_TRAIN": "impute", "EVALUATE": "evaluate", "MULTIQC": "multiqc",
                  "SAMPLESHEET_CHECK": "pipeline_info"}

NF_TREE = ("main.nf", "nextflow.config", "nextflow_schema.json", "conf", "modules", "subworkflows",
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
    """The pipeline's .nf files (not those in Nextflow's work/, nor tests/)."""
    found = []
    for path in root.rglob("*.nf"):
        parts = path.relative_to(root).parts
        if not {".nf-test", "work", ".nextflow"} & set(parts) and parts[0] != "tests":
            found.append(path)
    return sorted(found)


def config_files(root: Path) -> list[Path]:
    return [root / "nextflow.config", *sorted((root / "conf").glob("*.config"))]


def withname_blocks(text: str, process: str | None = None) -> list[tuple[list[str], str]]:
    """(process names, body) of the ``withName: 'A|B' { ... }`` blocks of a config text; with ``process``,
    only the blocks whose selector names it."""
    masked, readable = mask_groovy(text), mask_groovy(text, keep_strings=True)
    found = []
    for m in re.finditer(r"withName:\s*['\"]?([^'\"{\s]+)['\"]?\s*\{", readable):
        names = [name.split(":")[-1] for name in m.group(1).split("|")]
        if process is None or process in names:
            found.append((names, text[m.end(): matching_brace(masked, m.end() - 1)]))
    return found


def label_block(text: str, label: str) -> str | None:
    """The body of the ``withLabel: <label> { ... }`` block of a config text, or None."""
    masked, readable = mask_groovy(text), mask_groovy(text, keep_strings=True)
    m = re.search(rf"withLabel:\s*['\"]?{label}['\"]?\s*\{{", readable)
    return text[m.end(): matching_brace(masked, m.end() - 1)] if m else None


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


def groovy_command(*arguments: str) -> list[str]:
    """java running GroovyMain; fast start-up settings (a short-lived JVM), only the jars needed."""
    jars = [str(jar) for jar in sorted(groovy_jar_dir().glob("groovy-*.jar"))
            if re.fullmatch(r"groovy-(json-)?4[\d.]*\.jar", jar.name)]
    return ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", os.pathsep.join(jars),
            "groovy.ui.GroovyMain", *arguments]


def check_groovy_syntax(root: Path) -> list[str]:
    """Every .nf and .config file parses as Groovy 4 (the language of DSL2)."""
    files = [str(p) for p in nf_files(root) + config_files(root)]
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
    options = set()
    for _, block in withname_blocks(text, process):
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
        if not words or words[0] in SHELL_WORDS or "=" in words[0] or words[0].startswith("#"):
            continue  # shell syntax, file plumbing, variable assignments and comments
        options = set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", re.sub(r"\$\([^)]*\)", "", command)))
        for var in re.findall(r"\$\{(\w+)\}", command):
            options |= defs.get(var, set())
        commands.append((words[0], options, "${args}" in command))
    return commands


def repeated_options(process: Process) -> set[str]:
    """The --options a process script gives once per item of a list (inside a ``.collect { ... }`` closure
    of its Groovy code, e.g. one --truth per truth file): the subcommand must take them repeatedly."""
    script = process.parts.get("script", "")
    strings = re.findall(r'"""(.*?)"""', script, re.S)
    code = mask_groovy(script[: script.rfind('"""' + strings[-1])] if strings else script, keep_strings=True)
    found = set()
    for m in re.finditer(r"\.collect\s*\{", code):
        closure = code[m.end(): _closing(code, m.end() - 1)]
        found |= set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", closure))
    return found


def click_repeatable(command: click.Command) -> set[str]:
    """The option names of a click command that may be given more than once (multiple=True or count)."""
    return {name for param in command.params if isinstance(param, click.Option) and (param.multiple or param.count)
            for name in param.opts}


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
            if program.startswith("graphimpute_"):
                for option in sorted((options & repeated_options(process)) - click_repeatable(command) - set(unknown)):
                    problems.append(f"{name}: {program} is given {option} once per item of a list, but takes it "
                                    "once (not multiple=True): only the last would count")
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

class Expression(str):
    """A param default that is computed when Nextflow reads the config (not a literal value)."""


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
    return Expression(value)


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
        for name in re.findall(r"\bparams\.(?!getOrDefault\b)(\w+)", text):
            used.setdefault(name, set()).add(str(path.relative_to(root)))
        for name in re.findall(r"\bparams\.getOrDefault\(\s*['\"](\w+)['\"]", text):
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
        computed = isinstance(defined.get(name), Expression)  # e.g. a timestamp: the schema gives no default
        if name in defined and defined[name] is not None and not computed and spec.get("default") != defined[name]:
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
            source_text = source.read_text()
            defined = (set(blocks(source_text, "process")) | set(blocks(source_text, "workflow"))
                       | set(re.findall(r"(?m)^def\s+(\w+)\s*\(", source_text)))
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


# ---- emits that nothing uses -----------------------------------------------------------------------------

def _expand_braces(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [q for choice in m.group(1).split(",")
            for q in _expand_braces(pattern[: m.start()] + choice + pattern[m.end():])]


def publish_patterns(root: Path, process: str) -> list[str | None]:
    """The patterns of the publishDir entries that apply to ``process`` (None: every output but
    versions.yml), from its withName block in conf/modules.config, else the default publishDir."""
    text = (root / "conf" / "modules.config").read_text()
    found = withname_blocks(text, process)
    if found:
        block = found[0][1]
    else:
        masked = mask_groovy(text)
        scope = re.search(r"(?m)^process\s*\{", masked)
        block = text[scope.end(): matching_brace(masked, scope.end() - 1)]
        block = block[: block.find("withName")] if "withName" in block else block
    value = re.search(r"publishDir\s*=\s*\[(.*)", block, re.S)
    if value is None:
        return []
    patterns = []
    for entry in re.split(r"(?=\bpath\s*:)", mask_groovy(value.group(1), keep_strings=True))[1:]:
        m = re.search(r"pattern\s*:\s*['\"]([^'\"]+)['\"]", entry.split("]")[0])
        patterns.append(m.group(1) if m else None)
    return patterns


def _emit_files(process: Process) -> dict[str, list[str]]:
    """emit name -> the file names its output declaration makes (${...} as 'x')."""
    files = {}
    for line in mask_groovy(process.parts.get("output", ""), keep_strings=True).splitlines():
        emit = re.search(r"emit:\s*(\w+)", line)
        if emit:
            names = re.findall(r"path\s*\(?\s*[\"']([^\"']+)[\"']", line)
            files[emit.group(1)] = [re.sub(r"\$\{[^}]*\}", "x", name) for name in names]
    return files


def check_emits_are_used(root: Path) -> list[str]:
    """Every emit of a process is consumed (X.out.emit in a .nf file) or published by conf/modules.config
    (versions.yml never is: a versions emit must be collected); every workflow emit is consumed."""
    from fnmatch import fnmatch

    used = set()
    for path in nf_files(root):
        used |= set(re.findall(r"\b([A-Z][A-Z0-9_]*)\.out\.(\w+)", mask_groovy(path.read_text())))
    problems = []
    for name, process in sorted(processes(root).items()):
        patterns = publish_patterns(root, name)
        for emit, files in sorted(_emit_files(process).items()):
            if (name, emit) in used:
                continue
            published = files and all(
                file != "versions.yml" and any(pattern is None or any(fnmatch(file, p) for p in _expand_braces(pattern))
                                               for pattern in patterns)
                for file in files)
            if not published:
                problems.append(f"{name}.out.{emit}: emitted, but nothing consumes it and nothing publishes it")
    for name, (kind, emits) in sorted(definitions(root).items()):
        if kind == "workflow":
            for emit in sorted(emits):
                if (name, emit) not in used:
                    problems.append(f"{name}.out.{emit}: the workflow emits it, but nothing consumes it")
    return problems


# ---- the keys that join samples ----------------------------------------------------------------------------

# The key that gathers a sample's items: meta.sample is the sample's name, also on the masked copies of
# benchmark mode, whose meta.id is '<sample>.seed<k>'.
SAMPLE_KEY = "meta.sample"


def _key_expression(closure: str) -> str | None:
    """The first element of the list a ``map { a, b -> [first, ...] }`` closure returns."""
    m = re.search(r"->\s*\[(.*)\]\s*$", closure.strip(), re.S)
    if not m:
        return None
    depth, start = 0, m.group(1)
    for k, c in enumerate(start):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            return start[:k].strip()
    return start.strip()


def _is_sample_key(key: str | None) -> bool:
    return key is not None and bool(re.fullmatch(rf"{re.escape(SAMPLE_KEY)}|groupKey\(\s*{re.escape(SAMPLE_KEY)}\s*,.*\)",
                                                  key.strip()))


def check_join_keys(root: Path) -> list[str]:
    """Every groupTuple and join in the workflow is keyed by the sample (meta.sample, or groupKey(meta.sample,
    n)): following each channel chain (and the chains of the channels it joins, by name), the key the last
    ``map`` put first is the sample's where a groupTuple groups and on both sides of a join. Grouping by the
    whole meta (which holds the method) or by meta.id (one masked copy) would give every method or every mask
    seed its own EVALUATE; joining on different keys would pair nothing, or the wrong truth."""
    body = blocks((root / "workflows" / "graphimpute.nf").read_text(), "workflow")["GRAPHIMPUTE"]
    problems, keys = [], {}  # keys: channel name -> the key of its items, where a map set one
    for statement, _ in _statements(sections(body)["main"]):
        assignment = re.match(r"^(\w+)\s*=(?!=)\s*(.*)$", statement, re.S)
        chain = assignment.group(2) if assignment else statement
        source = re.match(r"(\w+)\s*\.", chain)
        key, k = (keys.get(source.group(1)) if source else None), 0  # the key along the chain, as far as known
        while True:
            m = re.compile(r"\.(map|groupTuple|join)\s*([({])").search(chain, k)
            if m is None:
                break
            end = _closing(chain, m.end() - 1)
            inside = chain[m.end(): end]
            k = end + 1
            if m.group(1) == "map":
                new = _key_expression(inside)
                # the key taken back out of a groupKey is the key it wraps
                key = re.sub(r"^groupKey\(\s*(.*?)\s*,.*\)$", r"\1", key or "") if new and "getGroupTarget()" in new \
                    else new
            elif m.group(1) == "groupTuple":
                if not _is_sample_key(key):
                    problems.append(f"workflows/graphimpute.nf: groupTuple is keyed by {key!r}, not by the sample "
                                    f"({SAMPLE_KEY})")
            else:
                named = re.match(r"\s*(\w+)\s*(,|$)", inside)
                inner = re.search(r"\.map\s*\{(.*)\}", inside, re.S)
                other = keys.get(named.group(1)) if named else _key_expression(inner.group(1)) if inner else None
                if not (_is_sample_key(key) and _is_sample_key(other)):
                    problems.append(f"workflows/graphimpute.nf: a join of key {key!r} with key {other!r}; both "
                                    f"sides must be keyed by the sample ({SAMPLE_KEY})")
        if assignment:
            keys[assignment.group(1)] = key
    return problems


def _closing(text: str, open_index: int) -> int:
    pairs = {"(": ")", "{": "}", "[": "]"}
    depth = 0
    for k in range(open_index, len(text)):
        if text[k] in pairs:
            depth += 1
        elif text[k] in pairs.values():
            depth -= 1
            if depth == 0:
                return k
    return len(text)


# ---- -resume: what changing --methods reruns --------------------------------------------------------------

def check_graph_ignores_methods(root: Path) -> list[str]:
    """GRAPH's inputs do not depend on --methods: its call takes nothing derived from the method list,
    and neither its script nor its ext.args read params.methods. So under -resume a new --methods reuses
    GRAPH (and every imputation still asked for)."""
    problems = []
    sources, _ = workflow_dag(root)
    for source in sorted(sources.get("GRAPH", set()) & {"INPUT_CHECK", "TAKE"}):
        problems.append(f"GRAPH takes input from {source} (the method list): changing --methods would rerun it")
    graph = processes(root).get("GRAPH")
    if graph is not None:
        if re.search(r"params\.methods|\bmethods\b", mask_groovy(graph.parts.get("input", "")) +
                     graph.parts.get("script", "")):
            problems.append("GRAPH: its inputs or script name the methods")
        if "--methods" in ext_args_options(root, "GRAPH") or any(
                "params.methods" in block for _, block in withname_blocks(
                    (root / "conf" / "modules.config").read_text(), "GRAPH")):
            problems.append("GRAPH: conf/modules.config gives it the methods")
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

def _statements(body: str, keep_strings: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """(statement, enclosing if-conditions) of a workflow body, from masked text (comments blanked, and
    strings too unless ``keep_strings``); a statement runs on while brackets are open or the next line
    starts with '.'."""
    masked = mask_groovy(body, keep_strings=keep_strings)
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
        benchmark = any(re.fullmatch(BENCHMARK_FLAG, c) for c in conditions)
        if step in BENCHMARK_ONLY and not benchmark:
            problems.append(f"{step} must run only under `if ({BENCHMARK_FLAG})`")
        if step not in BENCHMARK_ONLY and conditions:
            problems.append(f"{step} runs only under {' and '.join(conditions)}; it must always run")
    return problems


# ---- benchmark mode: one MASK per sample and mask seed, one EVALUATE per sample ----------------------------

def check_mask_seeds(root: Path) -> list[str]:
    """Benchmark mode masks each sample once per mask seed, as `graphimpute run --benchmark --mask-seeds N`
    does, and evaluates every seed of a sample together:

    - the workflow builds the seed list from params.mask_seeds (``maskSeeds(params.seed, params.mask_seeds)``:
      seed, seed + 1, ...; tests/test_nextflow_static.py runs the function) and MASK's input is
      NORMALISE.out.h5ad combined with one item per seed, so MASK runs params.mask_seeds times per sample;
    - each copy's meta is maskedMeta(meta, seed): its seed (mask_seed), its files' name '<sample>.seed<k>'
      (id) and the sample (sample; tests/test_nextflow_static.py runs the function);
    - the MASK module draws with meta.mask_seed, and conf/modules.config gives it no other --seed;
    - every groupKey that gathers a sample's items counts the seeds (one truth per seed, methods x seeds
      imputations), and EVALUATE gives each truth file its own --truth (arity '1..*': one file is a list too).
    """
    problems = []
    where = "workflows/graphimpute.nf"
    text = (root / where).read_text()
    body = blocks(text, "workflow")["GRAPHIMPUTE"]
    statements = [s for s, _ in _statements(sections(body)["main"], keep_strings=True)]
    if not re.search(r"(?m)^def\s+maskSeeds\s*\(\s*\w+\s*,\s*\w+\s*\)", mask_groovy(text)):
        problems.append(f"{where}: no function maskSeeds(seed, n_seeds) giving the mask seeds")
    seeds = next((m.group(1) for s in statements
                  if (m := re.fullmatch(r"(\w+)\s*=\s*maskSeeds\(\s*params\.seed\s*,\s*params\.mask_seeds\s*\)", s))),
                 None)
    if seeds is None:
        problems.append(f"{where}: the mask seeds are not built from params.mask_seeds "
                        "(seeds = maskSeeds(params.seed, params.mask_seeds))")
        seeds = "mask_seeds"
    assigned = {m.group(1): m.group(2) for s in statements if (m := re.fullmatch(r"(\w+)\s*=(?!=)\s*(.*)", s, re.S))}
    call = next((m.group(1).strip() for s in statements if (m := re.fullmatch(r"MASK\s*\((.*)\)", s, re.S))), None)
    if call is None:
        return problems + [f"{where}: MASK is not called"]
    chain = assigned.get(call, call)
    if not re.match(r"NORMALISE\.out\.h5ad\s*\.combine\(\s*channel\.fromList\(\s*" + re.escape(seeds) + r"\s*\)\s*\)",
                    chain.strip()):
        problems.append(f"{where}: MASK's input is not NORMALISE.out.h5ad.combine(channel.fromList({seeds})): one "
                        "MASK per sample and mask seed")
    closure = re.search(r"\.map\s*\{\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*->\s*\[\s*maskedMeta\(\s*\1\s*,\s*\3\s*\)"
                        r"\s*,\s*\2\s*\]\s*\}", chain)
    if closure is None:
        problems.append(f"{where}: MASK's input is not mapped with {{ meta, h5ad, mask_seed -> [maskedMeta(meta, "
                        "mask_seed), h5ad] }} (the meta of one masked copy)")
    if not re.search(r"(?m)^def\s+maskedMeta\s*\(", mask_groovy(text)):
        problems.append(f"{where}: no function maskedMeta(meta, mask_seed)")
    mask = processes(root).get("MASK")
    if mask is not None and not re.search(r"--seed \$\{meta\.mask_seed\}", _command_text(mask, "graphimpute_mask")):
        problems.append("MASK (modules/local/mask/main.nf): graphimpute_mask is not given --seed ${meta.mask_seed}")
    if "--seed" in ext_args_options(root, "MASK"):
        problems.append("conf/modules.config: MASK's ext.args passes --seed; the seed is the task's meta.mask_seed")
    main = " ".join(statements)
    sizes = re.findall(r"groupKey\(\s*[\w.]+\s*,\s*((?:[^()]|\(\))*)\)", main)
    if not sizes:
        problems.append(f"{where}: no groupKey gathers a sample's items")
    for size in sizes:
        if f"{seeds}.size()" not in size:
            problems.append(f"{where}: groupKey(..., {size.strip()}) does not count the mask seeds ({seeds}.size())")
    evaluate = processes(root).get("EVALUATE")
    if evaluate is not None:
        inputs = mask_groovy(evaluate.parts.get("input", ""), keep_strings=True)
        if not re.search(r"path\(\s*truth\b[^)]*arity:\s*'1\.\.\*'", inputs):
            problems.append("EVALUATE (modules/local/evaluate/main.nf): the truth input is not declared with "
                            "arity: '1..*' (one file per mask seed, a list even when there is one)")
        if "--truth" not in repeated_options(evaluate) or re.search(r"--truth \$\{?truth\b",
                                                                    evaluate.parts.get("script", "")):
            problems.append("EVALUATE (modules/local/evaluate/main.nf): the truth files are not passed one --truth "
                            "each (truth.collect { path -> \"--truth ${path}\" })")
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
        if ("process_gpu" in process.labels) != (name == GPU_PROCESS):
            problems.append(f"{name} ({where}): only {GPU_PROCESS} carries the process_gpu label")
        for program, options, _ in script_commands(process):
            if program.startswith("graphimpute_") and not re.search(r"--threads \$\{task\.cpus\}",
                                                                    _command_text(process, program)):
                problems.append(f"{name} ({where}): {program} is not given --threads ${{task.cpus}}")
        if re.search(r"^\s*container\s", directives, re.M):
            problems.append(f"{name} ({where}): declares a container; the images are named in conf/base.config")
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


def _command_text(process: Process, program: str) -> str:
    """The text of the first call of ``program`` in a process script, continuation lines joined."""
    shell = process.parts.get("script", "").replace("\\\\\n", " ")
    m = re.search(rf"^\s*{re.escape(program)}\b.*$", shell, re.M)
    return m.group(0) if m else ""


# An accelerator request, a container engine's GPU option, a CUDA device or a device assignment.
GPU_OPTIONS = re.compile(r"--gpus\b|--nv\b|nvidia\.com/gpu|\baccelerator\s*=|--device['\"]?\s*['\"]?cuda"
                         r"|CUDA_VISIBLE_DEVICES\s*=")


def check_gpu_scoping(root: Path) -> list[str]:
    """GPU settings live in the process_gpu label only, switched by params.use_gpu; modules read
    task.accelerator; nothing outside the label asks for a GPU, gets GPU options or the CUDA image."""
    problems = []
    base = (root / "conf" / "base.config").read_text()
    block = label_block(base, "process_gpu")
    if block is None:
        return ["conf/base.config: no withLabel 'process_gpu' block"]
    if not re.search(r"accelerator\s*=\s*\{\s*params\.use_gpu\.toString\(\)\.toBoolean\(\)\s*\?\s*1\s*:\s*null\s*\}",
                     block):
        problems.append("process_gpu: accelerator must be { params.use_gpu.toString().toBoolean() ? 1 : null } "
                        "(one device per task, only when asked for; the flag may arrive as text)")
    options = re.search(r"containerOptions\s*=\s*\{(.*)\}", block, re.S)
    body = options.group(1) if options else ""
    if not (re.search(r"'docker'.*?'--gpus all'", body, re.S) and re.search(r"'singularity'.*?'--nv'", body, re.S)
            and "'apptainer'" in body and re.search(r"task\.accelerator\s*==\s*null", body)):
        problems.append("process_gpu: containerOptions must give --gpus all (docker) and --nv "
                        "(singularity, apptainer) to tasks with an accelerator, and nothing to others")
    # nothing GPU-related anywhere else in the configs (strings kept: options are strings)
    for path in config_files(root):
        text = path.read_text()
        if path.name == "base.config":
            start = text.index(block)
            text = text[:start] + "\n" * block.count("\n") + text[start + len(block):]
        for k, line in enumerate(mask_groovy(text, keep_strings=True).splitlines(), 1):
            if GPU_OPTIONS.search(line) and "envWhitelist" not in line:
                problems.append(f"{path.relative_to(root)}:{k}: GPU options outside the process_gpu label "
                                f"reach every process: {line.strip()}")
    profile = re.search(r"(?m)^\s*gpu\s*\{([^}]*)\}", mask_groovy((root / "nextflow.config").read_text(),
                                                                  keep_strings=True))
    if not profile or not re.search(r"params\.use_gpu\s*=\s*true", profile.group(1)):
        problems.append("nextflow.config: the gpu profile must set params.use_gpu = true")
    # the image: CUDA only for tasks with an accelerator (conf/base.config's process.container)
    image = re.search(r"(?m)^    container\s*=\s*\{(.*?)\n    \}", base, re.S)
    if not image or not re.search(r"task\.accelerator\s*!=\s*null", image.group(1)) \
            or "-cuda" not in image.group(1) \
            or not re.search(r"params\.(container_gpu|getOrDefault\('container_gpu')", image.group(1)):
        problems.append("conf/base.config: process.container must pick the CUDA image (<tag>-cuda, "
                        "--container_gpu) for tasks with an accelerator only")
    for name, process in processes(root).items():
        where = process.path.relative_to(root)
        gpu = "process_gpu" in process.labels
        code = mask_groovy(process.body, keep_strings=True)
        if re.search(r"^\s*(accelerator|containerOptions)\b", process.parts["directives"], re.M):
            problems.append(f"{name} ({where}): sets accelerator or containerOptions itself; the process_gpu "
                            "label does (conf/base.config)")
        if not gpu and re.search(r"cuda", code):
            problems.append(f"{name} ({where}): asks for CUDA without the process_gpu label")
        if gpu and "task.accelerator ? 'cuda' : 'cpu'" not in process.parts.get("script", ""):
            problems.append(f"{name} ({where}): must train on cuda exactly when the task has an accelerator "
                            "(def device = task.accelerator ? 'cuda' : 'cpu')")
    return problems


def check_gpu_routing(root: Path) -> list[str]:
    """Only methods that train reach the GPU label: the workflow sends items whose meta.trains is true
    to IMPUTE_TRAIN (process_gpu) and the rest to IMPUTE, and meta.trains is the registry's Method.trains
    as `graphimpute check-samplesheet --write-methods` writes it (the `trains` column)."""
    problems = []
    body = blocks((root / "workflows" / "graphimpute.nf").read_text(), "workflow")["GRAPHIMPUTE"]
    main = mask_groovy(sections(body)["main"], keep_strings=True)
    branch = re.search(r"\.branch\s*\{\s*(\w+)\s*,\s*\w+\s*->\s*(\w+)\s*:\s*(.+?)\n\s*(\w+)\s*:\s*true\s*\}",
                       main, re.S)
    if branch is None:
        return ["workflows/graphimpute.nf: the imputations are not split with .branch { meta, h5ad -> "
                "<train>: meta.trains; <other>: true }"]
    meta, train, criterion, other = branch.groups()
    if criterion.strip() != f"{meta}.trains":
        problems.append(f"workflows/graphimpute.nf: the GPU branch is chosen by {criterion.strip()!r}, not "
                        f"{meta}.trains (the registry's Method.trains)")
    sources, _ = workflow_dag(root)
    calls = {name: re.search(rf"(?m)^\s*{name}\s*\((.*?)\)\s*$", main) for name in IMPUTE_STEPS}
    if calls[GPU_PROCESS] is None or not re.search(rf"\.{train}\b", calls[GPU_PROCESS].group(1)):
        problems.append(f"workflows/graphimpute.nf: {GPU_PROCESS} is not called with the '{train}' branch")
    if calls["IMPUTE"] is None or not re.search(rf"\.{other}\b", calls["IMPUTE"].group(1)):
        problems.append(f"workflows/graphimpute.nf: IMPUTE is not called with the '{other}' branch")
    gpu = [name for name, process in processes(root).items() if "process_gpu" in process.labels]
    if gpu != [GPU_PROCESS]:
        problems.append(f"process_gpu is carried by {', '.join(gpu) or 'no process'}, not only {GPU_PROCESS}")
    check = (root / "subworkflows" / "local" / "input_check" / "main.nf").read_text()
    if not re.search(r"trains:\s*row\.trains\s*==\s*'true'", check):
        problems.append("subworkflows/local/input_check/main.nf: trains is not read from the `trains` column "
                        "that check-samplesheet --write-methods writes")
    if "--write-methods" not in processes(root)["SAMPLESHEET_CHECK"].parts.get("script", ""):
        problems.append("SAMPLESHEET_CHECK: does not write the methods with --write-methods")
    return problems


def check_impute_twins(root: Path) -> list[str]:
    """IMPUTE and IMPUTE_TRAIN run the same script: inputs, outputs, script and stub equal but for the
    device (cpu; task.accelerator ? 'cuda' : 'cpu') and the GPU label."""
    found = processes(root)
    if not all(name in found for name in IMPUTE_STEPS):
        return [f"{name}: no such process" for name in IMPUTE_STEPS if name not in found]
    one, two = (found[name] for name in IMPUTE_STEPS)
    problems = []
    for part in ("input", "output", "when", "script", "stub"):
        a, b = one.parts.get(part, ""), two.parts.get(part, "")
        b = b.replace("def device = task.accelerator ? 'cuda' : 'cpu'", "def device = 'cpu'")
        if a != b:
            problems.append(f"IMPUTE and IMPUTE_TRAIN differ in their {part}: keep the two modules the same "
                            "but for the device")
    if one.labels | {"process_gpu"} != two.labels:
        problems.append("IMPUTE_TRAIN must carry IMPUTE's labels plus process_gpu")
    return problems


def check_publish_layout(root: Path) -> list[str]:
    """Each step publishes to the folder `graphimpute run` writes it to."""
    text = (root / "conf" / "modules.config").read_text()
    problems = []
    for name, folder in PUBLISH_LAYOUT.items():
        found = withname_blocks(text, name)
        if not found:
            problems.append(f"conf/modules.config: no withName '{name}' block")
            continue
        block = found[0][1]
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
binding.setVariable('log', [warn: { String message -> warnings << message }, info: { String message -> },
                            debug: { String message -> }])
binding.setVariable('params', [outdir: 'no-such-outdir', trace_report_suffix: 'test'])
binding.setVariable('workflow', [manifest: [name: 'graphimpute', version: '0.1.0', description: 'test'],
                                 projectDir: new File('.').absoluteFile, runName: 'test', launchDir: '.',
                                 workDir: 'work', profile: 'test', containerEngine: null])
"""


def run_groovy_functions(root: Path, nf_file: str, driver: str) -> dict:
    """Run the functions of ``nf_file`` (its workflow blocks and includes removed) under stand-ins for Nextflow's
    file(), error(), log, params and workflow; ``driver`` is Groovy that fills a map ``out``, printed as JSON."""
    import tempfile

    text = (root / nf_file).read_text()
    masked = mask_groovy(text)
    for m in reversed(list(re.finditer(r"(?m)^\s*workflow\s+\w*\s*\{", masked))):
        end = matching_brace(masked, m.end() - 1)
        text = text[: m.start()] + "\n" * text[m.start(): end + 1].count("\n") + text[end + 1:]
    text = re.sub(r"(?m)^include\s*\{[^}]*\}\s*from\s*'[^']*'[ \t]*$", "", text)  # includes: Nextflow's, not Groovy's
    script = text + GROOVY_STAND_INS + "def out = [:]\n" + driver + "\nout.warnings = warnings\n" \
        "println groovy.json.JsonOutput.toJson(out)\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "functions.groovy"
        path.write_text(script)
        done = subprocess.run(groovy_command(str(path)), capture_output=True, text=True, timeout=300, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"Groovy failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- Nextflow's strict parser: `nextflow lint`, or nf-lang built offline (../shared/tools/nflint) ----------

REPO = Path(__file__).resolve().parents[1]
# Warnings the strict parser may give that are kept on purpose, each with its reason (none today).
LINT_WARNINGS_KEPT: dict[str, str] = {}


def nflint_path() -> Path:
    return Path(os.environ.get("GRAPHIMPUTE_NFLINT", REPO.parent / "shared" / "tools" / "nflint" / "nflint"))


def linter() -> str | None:
    """'nextflow' when Nextflow is on PATH (its own `nextflow lint`), else 'nflint' when
    ../shared/tools/nflint and Java are there, else None."""
    if shutil.which("nextflow"):
        return "nextflow"
    if nflint_path().is_file() and shutil.which("java"):
        return "nflint"
    return None


def lint_unavailable() -> str | None:
    if linter() is None:
        return (f"neither `nextflow` on PATH nor Java and {nflint_path()} (the strict parser built offline): "
                "the strict-syntax check cannot run here")
    return None


@dataclass
class LintMessage:
    file: str
    line: int
    column: int
    message: str
    warning: bool

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {'warning: ' if self.warning else ''}{self.message}"


def lint(root: Path) -> list[LintMessage]:
    """Every error and warning of Nextflow's strict parser on the pipeline at ``root`` (paths relative
    to it): `nextflow lint -o json` where Nextflow is installed, else nflint (the same parser and
    checks, built offline from Nextflow's nf-lang)."""
    tool = linter()
    if tool == "nextflow":
        done = subprocess.run(["nextflow", "lint", "-o", "json", "."], cwd=root, capture_output=True, text=True,
                              timeout=600)
        start = done.stdout.find("{")
        if start < 0:
            raise RuntimeError(f"nextflow lint printed no JSON (exit {done.returncode}): {done.stderr[-2000:]}")
        report = json.loads(done.stdout[start:])
        return [LintMessage(str(Path(item["filename"]).resolve().relative_to(root.resolve()))
                            if Path(item["filename"]).is_absolute() else item["filename"],
                            item["startLine"], item["startColumn"], item["message"], warning)
                for key, warning in (("errors", False), ("warnings", True)) for item in report.get(key, [])]
    if tool == "nflint":
        done = subprocess.run([str(nflint_path()), str(root)], capture_output=True, text=True, timeout=600)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"nflint failed (exit {done.returncode}): {done.stderr[-2000:]}")
        found = []
        for line in done.stdout.splitlines():
            m = re.match(r"^(.+?):(\d+):(\d+): (warning: )?(.*)$", line)
            if m:
                found.append(LintMessage(m.group(1), int(m.group(2)), int(m.group(3)), m.group(5), bool(m.group(4))))
        if done.returncode == 1 and not any(not message.warning for message in found):
            raise RuntimeError(f"nflint reported errors it did not list: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return found
    raise RuntimeError(lint_unavailable())


# ---- software environments: every registered method's packages in both images and the conda env -----------

# conda-forge/bioconda names of the pip distributions whose conda package is named otherwise
CONDA_NAMES = {"torch": {"pytorch", "pytorch-cpu", "pytorch-gpu"}, "torch-geometric": {"pytorch-geometric"},
               "igraph": {"python-igraph"}, "matplotlib": {"matplotlib-base"}}


def _dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec_name(spec: str) -> str:
    spec = spec.strip().strip("'\"").split("::")[-1]
    return _dist(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0])


def requirement_names(path: Path) -> set[str]:
    """Distribution names in a pip requirements file."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(_spec_name(line))
    return names


def conda_environment(root: Path) -> tuple[set[str], set[str]]:
    """(conda packages, pip packages) of containers/environment.yml (read by hand: no YAML dependency)."""
    conda, pip, in_pip, in_dependencies = set(), set(), False, False
    for line in (root / "containers" / "environment.yml").read_text().splitlines():
        text = line.split("#")[0].rstrip()
        if re.match(r"^\S", text):  # a top-level key: name, channels, dependencies
            in_dependencies = text.startswith("dependencies:")
            continue
        item = re.match(r"^(\s*)-\s+(.+)$", text)
        if not in_dependencies:
            continue
        if not item:
            in_pip = in_pip and bool(text.strip()) and not re.match(r"^\S", text)
            continue
        indent, value = len(item.group(1)), item.group(2).strip()
        if value == "pip:":
            in_pip, pip_indent = True, indent
            continue
        if in_pip and indent > pip_indent:
            pip.add(_spec_name(value))
        else:
            in_pip = False
            if re.match(r"^[A-Za-z0-9]", value):
                conda.add(_spec_name(value.replace("=", "==", 1) if "==" not in value else value))
    return conda, pip


def dockerfile_installs(root: Path, name: str) -> tuple[set[str], list[str]]:
    """(distribution names, notes) that a Dockerfile installs: pip specs and -r files, and the conda
    environment file when it builds one (micromamba/conda/mamba ... -f containers/environment.yml)."""
    text = re.sub(r"\\\n", " ", (root / "containers" / name).read_text())
    names, notes = set(), []
    for line in text.splitlines():
        if not line.startswith("RUN"):
            continue
        for command in re.split(r"&&|;", line[3:]):
            words = command.split()
            if re.search(r"\b(micromamba|mamba|conda)\b.*(-f|--file)\s+\S*environment\.yml", command):
                conda, pip = conda_environment(root)
                names |= conda | pip
                notes.append("environment.yml")
            if "pip" in words and "install" in words:
                rest = words[words.index("install") + 1:]
                k = 0
                while k < len(rest):
                    word = rest[k]
                    if word in ("-r", "--requirement"):
                        path = root / Path(rest[k + 1]).name
                        names |= requirement_names(path)
                        notes.append(f"{path.name}{' (--no-deps)' if '--no-deps' in rest else ''}")
                        k += 2
                        continue
                    if word.startswith("-"):
                        k += 2 if word in ("--index-url", "--extra-index-url", "--find-links", "-f", "-i") else 1
                        continue
                    if not word.startswith(("/", ".")) and "$" not in word and "{" not in word:
                        names.add(_spec_name(word))
                    k += 1
    return names, notes


def _installed_by(names: set[str], dist: str, conda: bool) -> bool:
    return dist in names or (conda and bool(CONDA_NAMES.get(dist, set()) & names))


def check_environments(root: Path, registry: dict | None = None) -> list[str]:
    """Every registered method runs in the CPU image, the CUDA image and the conda environment: the core
    dependencies (pyproject.toml) and each method's optional packages (Method.requires, import names,
    mapped to their distributions through the packages installed here) are installed by all three.
    The MAGIC stack goes in without dependency resolution (requirements-baselines.txt says why); the CPU
    image and the conda environment have the CPU build of PyTorch, the CUDA image the CUDA build."""
    import importlib.metadata as metadata
    import tomllib

    from graphimpute import methods

    registry = methods.available() if registry is None else registry
    conda, pip = conda_environment(root)
    envs = {"containers/environment.yml": (conda | pip, True)}
    for name in ("Dockerfile", "Dockerfile.cuda"):
        installed, _ = dockerfile_installs(root, name)
        envs[f"containers/{name}"] = (installed, name == "Dockerfile" and "environment.yml" in
                                      dockerfile_installs(root, name)[1])
    core = {_spec_name(spec) for spec in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    problems = []
    for where, (installed, from_conda) in envs.items():
        for dist in sorted(core):
            if not _installed_by(installed, dist, from_conda):
                problems.append(f"{where}: does not install {dist} (a core dependency in pyproject.toml)")
    providers = metadata.packages_distributions()
    for name, method in sorted(registry.items()):
        for package in method.requires:
            dists = providers.get(package)
            if not dists:
                problems.append(f"method {name} requires {package!r}, which is not installed here, so its "
                                "distribution is unknown: install it (see its install_hint) to check the images")
                continue
            for where, (installed, from_conda) in envs.items():
                if not any(_installed_by(installed, _dist(d), from_conda) for d in dists):
                    problems.append(f"{where}: does not install {dists[0]} ({package}), which method {name} "
                                    "needs")
    def instructions(name: str) -> str:  # comments dropped, continued lines joined
        text = "\n".join(line for line in (root / "containers" / name).read_text().splitlines()
                         if not line.lstrip().startswith("#"))
        return re.sub(r"\\\n", " ", text)

    cuda_text = instructions("Dockerfile.cuda")
    if not re.search(r"pip install[^\n]*--no-deps[^\n]*requirements-baselines\.txt", cuda_text):
        problems.append("containers/Dockerfile.cuda: requirements-baselines.txt must be installed with --no-deps")
    cpu_text = instructions("Dockerfile")
    if re.search(r"pip install[^\n&;]*\btorch\b", cpu_text) or "pytorch-cpu" not in conda:
        problems.append("containers/Dockerfile: PyTorch must come from the conda environment's pytorch-cpu "
                        "(a pip install of torch pulls the CUDA build)")
    return problems
