"""`taskmem-eval run`: clear errors for missing media options, and no silent "success" when
nothing could be evaluated."""

from __future__ import annotations

from pathlib import Path

from taskmem_ros.evaluation.cli import main
from taskmem_ros.evaluation.datasets.egotempo import DEFAULT_EGOTEMPO_QA


def test_egotempo_without_video_dir_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["run", "--dataset", "egotempo", "--db", str(tmp_path / "e.db"), "--run", "r"]) == 2
    err = capsys.readouterr().err
    assert "--video-dir" in err and "Traceback" not in err and "TypeError" not in err


def test_empty_video_dir_evaluates_nothing_and_fails(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    rc = main(
        ["run", "--dataset", "egotempo", "--video-dir", str(videos), "--db", str(tmp_path / "e.db"), "--run", "r"]
    )
    out = capsys.readouterr()
    assert rc == 1
    assert "nothing to evaluate" in out.err and "0 readable media files" in out.err
    assert "Accuracy" not in out.out  # no score printed for an empty run


def test_default_annotations_ship_with_the_package() -> None:
    """The default resolves inside the package (a fresh clone or a pip install has it), not to
    a folder beside the repository."""
    import taskmem_ros

    assert DEFAULT_EGOTEMPO_QA.is_file() and DEFAULT_EGOTEMPO_QA.name == "egotempo_openQA.json"
    assert DEFAULT_EGOTEMPO_QA.is_relative_to(Path(taskmem_ros.__file__).parent)
    assert (DEFAULT_EGOTEMPO_QA.parent / "EGOTEMPO_LICENSE").is_file()
