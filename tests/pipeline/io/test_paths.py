from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.io.paths import FilePlan, same_file_key


class TestSameFileKey:
    def test_spellings_and_links_of_one_file_agree(self, tmp_path: Path) -> None:
        target = tmp_path / "a.jsonl"
        target.touch()
        (tmp_path / "link").symlink_to(target)
        os.link(target, tmp_path / "hard")
        keys = {
            same_file_key(p)
            for p in (target, tmp_path / "." / "a.jsonl", tmp_path / "link", tmp_path / "hard")
        }
        assert len(keys) == 1

    def test_missing_files_compare_by_resolved_path(self, tmp_path: Path) -> None:
        assert same_file_key(tmp_path / "x" / ".." / "new") == same_file_key(tmp_path / "new")
        assert same_file_key(tmp_path / "new") != same_file_key(tmp_path / "other")


class TestFilePlan:
    def test_distinct_files_pass(self, tmp_path: Path) -> None:
        plan = FilePlan().inputs("--input", [tmp_path / "in"]).output("--output", tmp_path / "o")
        plan.output("--dead-letters", tmp_path / "d").directory("--png-dir", tmp_path / "p")
        plan.check()

    def test_two_outputs_on_one_file_name_both_options(self, tmp_path: Path) -> None:
        plan = FilePlan().output("--report", tmp_path / "r").output("--json", tmp_path / "./r")
        with pytest.raises(ConfigError, match=r"--json would clobber --report"):
            plan.check()

    def test_an_output_over_an_input_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "events.jsonl").write_text("{}\n")
        plan = FilePlan().inputs("--input", [tmp_path / "events.jsonl"])
        plan.output("--output", tmp_path / "events.jsonl")
        with pytest.raises(ConfigError, match=r"--output is also read by --input"):
            plan.check()

    def test_an_input_named_twice_is_fine(self, tmp_path: Path) -> None:
        FilePlan().inputs("--input", [tmp_path / "a", tmp_path / "a"]).check()

    def test_allowed_pairs_may_share(self, tmp_path: Path) -> None:
        plan = (
            FilePlan().inputs("--state-in", [tmp_path / "s"]).output("--state-out", tmp_path / "s")
        )
        plan.allow("--state-in", "--state-out").check()

    def test_a_directory_output_that_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "plots").write_text("not a directory")
        with pytest.raises(ConfigError, match=r"--png-dir: .* is not a directory"):
            FilePlan().directory("--png-dir", tmp_path / "plots").check()

    def test_stdout_and_absent_options_are_not_files(self) -> None:
        FilePlan().output("--output", "-").output("--truth", None).output("--json", "-").check()
