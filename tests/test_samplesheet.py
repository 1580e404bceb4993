"""The samplesheet check the Nextflow pipeline runs first (graphimpute check-samplesheet)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphimpute import methods, samplesheet
from graphimpute.cli import main


def _sheet(folder: Path, text: str, name: str = "samples.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _problems(path: Path, **kwargs) -> list[str]:
    with pytest.raises(samplesheet.SamplesheetError) as caught:
        samplesheet.read(path, **kwargs)
    return caught.value.problems


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "a.h5ad").touch()
    (tmp_path / "b.csv.gz").touch()
    (tmp_path / "tenx").mkdir()
    (tmp_path / "c.h5").touch()
    return tmp_path


def test_valid_sheet_resolves_paths_and_formats(inputs: Path):
    sheet = _sheet(inputs, "sample,input,label_key\nA,a.h5ad,cell_type\nB,b.csv.gz,\nC,tenx,\nD,c.h5,\n")
    samples = samplesheet.read(sheet)
    assert [s.sample for s in samples] == ["A", "B", "C", "D"]
    assert [s.format for s in samples] == ["h5ad", "csv", "10x", "10x-h5"]
    assert samples[0].input == str(inputs / "a.h5ad")  # relative to the samplesheet's folder
    assert samples[0].label_key == "cell_type" and samples[1].label_key == ""


def test_relative_paths_follow_the_sheet_not_the_cwd(inputs: Path, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    samples = samplesheet.read(_sheet(inputs, "sample,input\nA,a.h5ad\n"))
    assert samples[0].input == str(inputs / "a.h5ad")


def test_format_column_overrides_the_name(inputs: Path):
    (inputs / "counts.matrix").touch()
    samples = samplesheet.read(_sheet(inputs, "sample,input,format\nA,counts.matrix,tsv\nB,a.h5ad,\n"))
    assert [s.format for s in samples] == ["tsv", "h5ad"]


def test_layer_applies_to_h5ad_inputs_only(inputs: Path):
    samples = samplesheet.read(_sheet(inputs, "sample,input,layer\nA,a.h5ad,counts\n"))
    assert samples[0].layer == "counts"
    problems = _problems(_sheet(inputs, "sample,input,layer\nA,a.h5ad,counts\nB,b.csv.gz,counts\n"))
    assert problems == ["line 3: a layer ('counts') is only read from h5ad inputs, not from csv"]


def test_missing_required_columns_are_named(inputs: Path):
    problems = _problems(_sheet(inputs, "sample,file\nA,a.h5ad\n"))
    assert len(problems) == 2
    assert "missing required column(s): input" in problems[0]
    assert "unknown column(s): file" in problems[1]


def test_unknown_and_repeated_columns(inputs: Path):
    problems = _problems(_sheet(inputs, "sample,input,lable_key,sample\nA,a.h5ad,x,A\n"))
    assert any("unknown column(s): lable_key" in p for p in problems)
    assert any("more than once: sample" in p for p in problems)


def test_duplicate_sample_names_name_both_lines(inputs: Path):
    problems = _problems(_sheet(inputs, "sample,input\nA,a.h5ad\nB,b.csv.gz\nA,c.h5\n"))
    assert problems == ["line 4: sample name 'A' is already used on line 2; sample names must be unique"]


def test_missing_file_is_reported_with_where_it_was_looked_for(inputs: Path):
    problems = _problems(_sheet(inputs, "sample,input\nA,a.h5ad\nB,nope.h5ad\n"))
    assert problems == [f"line 3: input 'nope.h5ad' of sample 'B' does not exist (looked for {inputs / 'nope.h5ad'})"]


def test_unknown_format_and_bad_format_column(inputs: Path):
    (inputs / "x.xlsx").touch()
    problems = _problems(_sheet(inputs, "sample,input,format\nA,x.xlsx,\nB,a.h5ad,loom\n"))
    assert len(problems) == 2
    assert problems[0].startswith("line 2: input 'x.xlsx' of sample 'A': unknown format")
    assert "'format' column" in problems[0]
    assert problems[1].startswith("line 3: unknown format 'loom'")


def test_every_problem_is_reported_at_once(inputs: Path):
    text = "sample,input\nbad name,a.h5ad\n,b.csv.gz\nC,\nD,a.h5ad,extra\nE,missing.h5ad\n"
    problems = _problems(_sheet(inputs, text))
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "may only hold letters" in problems[0]
    assert "empty sample name" in problems[1]
    assert "empty input path" in problems[2]
    assert "3 fields, the header has 2" in problems[3]
    assert "does not exist" in problems[4]


def test_empty_and_header_only_sheets(inputs: Path):
    assert "empty" in _problems(_sheet(inputs, "\n\n"))[0]
    assert "no samples" in _problems(_sheet(inputs, "sample,input\n"))[0]


def test_blank_lines_and_a_byte_order_mark_are_tolerated(inputs: Path):
    sheet = inputs / "bom.csv"
    sheet.write_bytes("\ufeffsample,input\n\nA,a.h5ad\n\n".encode("utf-8"))
    assert [s.sample for s in samplesheet.read(sheet)] == ["A"]


def test_remote_inputs_and_unstaged_files(inputs: Path):
    sheet = _sheet(inputs, "sample,input\nA,s3://bucket/a.h5ad\nB,gone.h5ad\nC,run1/filtered_feature_bc_matrix/\n")
    samples = samplesheet.read(sheet, check_files=False)
    assert [s.input for s in samples] == ["s3://bucket/a.h5ad", str(inputs / "gone.h5ad"),
                                          str(inputs / "run1/filtered_feature_bc_matrix")]
    assert [s.format for s in samples] == ["h5ad", "h5ad", "10x"]
    # with the check on, the local paths are looked for and the URI is left to Nextflow
    assert [p.split(":")[0] for p in _problems(sheet)] == ["line 3", "line 4"]


def test_base_dir_may_be_a_folder_or_a_uri(inputs: Path, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    sheet = _sheet(other, "sample,input\nA,a.h5ad\nB,/abs/b.h5ad\n")
    local = samplesheet.read(sheet, base_dir=str(inputs), check_files=False)
    assert [s.input for s in local] == [str(inputs / "a.h5ad"), "/abs/b.h5ad"]
    remote = samplesheet.read(sheet, base_dir="s3://bucket/run/", check_files=False)
    assert remote[0].input == "s3://bucket/run/a.h5ad"


def test_symlinked_inputs_keep_their_name(inputs: Path):
    (inputs / "blob").write_text("")
    (inputs / "link.h5ad").symlink_to(inputs / "blob")
    samples = samplesheet.read(_sheet(inputs, "sample,input\nA,link.h5ad\n"))
    assert samples[0].input == str(inputs / "link.h5ad") and samples[0].format == "h5ad"


def test_cli_writes_checked_sheet_and_method_list(inputs: Path):
    sheet = _sheet(inputs, "sample,input,label_key\nA,a.h5ad,cell_type\nB,tenx,\n")
    out, names = inputs / "checked.csv", inputs / "methods.txt"
    result = CliRunner().invoke(main, ["check-samplesheet", str(sheet), "-o", str(out), "--methods", "all",
                                       "--write-methods", str(names), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows == [{"sample": "A", "input": str(inputs / "a.h5ad"), "format": "h5ad", "label_key": "cell_type",
                     "layer": ""},
                    {"sample": "B", "input": str(inputs / "tenx"), "format": "10x", "label_key": "", "layer": ""}]
    rows = list(csv.DictReader(names.open(), delimiter="\t"))
    assert [row["method"] for row in rows] == list(methods.names())
    assert {row["method"]: row["trains"] == "true" for row in rows} == {
        name: method.trains for name, method in methods.available().items()}


def test_cli_checks_method_params_names(inputs: Path):
    """--method_params of the pipeline: a mistyped method or parameter stops the first task."""
    sheet = _sheet(inputs, "sample,input\nA,a.h5ad\n")
    runner = CliRunner()

    def check(content: str):
        path = inputs / "params.json"
        path.write_text(content)
        return runner.invoke(main, ["check-samplesheet", str(sheet), "-o", str(inputs / "o.csv"), "--methods", "none",
                                    "--method-params", str(path), "--quiet"])

    assert check('{"scgnn": {"max_epochs": 3}, "none": {}}').exit_code == 0
    typo = check('{"scgn": {"max_epochs": 3}}')
    assert typo.exit_code == 2 and "unknown method 'scgn'" in typo.output
    unknown = check('{"scgnn": {"max_epoch": 3}}')
    assert unknown.exit_code == 2 and "has no parameter 'max_epoch'" in unknown.output
    flat = check('{"max_epochs": 3}')
    assert flat.exit_code == 2 and "keyed by method name" in flat.output


def test_cli_fails_with_every_problem_and_writes_nothing(inputs: Path):
    sheet = _sheet(inputs, "sample,input\nA,a.h5ad\nA,missing.h5ad\n")
    out = inputs / "checked.csv"
    result = CliRunner().invoke(main, ["check-samplesheet", str(sheet), "-o", str(out), "--quiet"])
    assert result.exit_code == 2
    assert "already used on line 2" in result.output and "does not exist" in result.output
    assert not out.exists()


def test_cli_rejects_unknown_methods_and_overwriting_the_sheet(inputs: Path):
    sheet = _sheet(inputs, "sample,input\nA,a.h5ad\n")
    runner = CliRunner()
    unknown = runner.invoke(main, ["check-samplesheet", str(sheet), "-o", str(inputs / "o.csv"),
                                   "--methods", "none,not_a_method", "--quiet"])
    assert unknown.exit_code == 2 and "unknown method 'not_a_method'" in unknown.output
    same = runner.invoke(main, ["check-samplesheet", str(sheet), "-o", str(sheet), "--quiet"])
    assert same.exit_code == 2 and "input path" in same.output
    assert sheet.read_text() == "sample,input\nA,a.h5ad\n"
    orphan = runner.invoke(main, ["check-samplesheet", str(sheet), "-o", str(inputs / "o.csv"),
                                  "--write-methods", str(inputs / "m.txt"), "--quiet"])
    assert orphan.exit_code == 2 and "--write-methods needs --methods" in orphan.output


def test_bundled_test_samplesheet_is_valid():
    root = Path(__file__).resolve().parents[1]
    samples = samplesheet.read(root / "assets" / "samplesheet_test.csv")
    assert [s.format for s in samples] == ["h5ad", "h5ad"]
    data = root / "src" / "graphimpute" / "data"
    assert [Path(s.input) for s in samples] == [data / "pbmc3k_small.h5ad", data / "dropseq_3cl_small.h5ad"]
