"""`detstyle make-voc`, `train-detector`, `detect`, `eval-detector` in-process, end to end on a 4-image set.

One module-scoped run makes the set and trains 2 steps at 268 px (the smallest SSD300 input),
interrupted by SIGINT after step 1 and finished with --resume; the other tests detect,
evaluate and train on from its `.pth`.  Bad datasets must end in one error line, exit != 0,
with no run folder made.
"""

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import interrupt_at

SIZE = "268"


def _main(*args) -> tuple[int, str, str]:
    """Run `detstyle ARGS` in this process; (exit status, stdout, stderr)."""
    from transfer.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _error_line(err: str) -> str:
    """The single `detstyle: error:` line a failed command must print (tqdm and notes aside, nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("detstyle: error: "), err
    return lines[0]


def _train_args(data, run, *extra):
    return ["train-detector", "--data", data, "--init", "random", "--steps", "2", "--batch-size", "1",
            "--size", SIZE, "-o", run, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """make-voc (4 images), then train-detector interrupted by SIGINT after step 1, then --resume."""
    import transfer.cli.detector as cli

    tmp = tmp_path_factory.mktemp("detector")
    data, run = tmp / "voc", tmp / "run"
    made = _main("make-voc", data, "--images", 4, "--seed", 0, "--size", SIZE, "--classes", "disc,square,triangle")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "train_progress", lambda quiet: (interrupt_at(1), lambda: None))
        interrupted = _main(*_train_args(data, run))
    state_after_interrupt = json.loads((run / "train_state.json").read_text())
    final_after_interrupt = (run / "ssd300_final.pth").exists()
    resumed = _main(*_train_args(data, run, "--resume", "--quiet"))
    return {"tmp": tmp, "data": data, "run": run, "made": made, "interrupted": interrupted, "resumed": resumed,
            "state_after_interrupt": state_after_interrupt, "final_after_interrupt": final_after_interrupt}


def test_make_voc_writes_a_voc_set_and_says_so(trained):
    code, out, _ = trained["made"]
    data = trained["data"]
    assert code == 0 and out.startswith(f"wrote 4 images, ") and "disc" in out
    assert (data / "classes.txt").read_text().split() == ["disc", "square", "triangle"]
    assert len(list((data / "Annotations").glob("*.xml"))) == 4 and len(list((data / "JPEGImages").glob("*.jpg"))) == 4


def test_make_voc_refuses_a_non_empty_folder_without_overwrite(trained):
    code, _, err = _main("make-voc", trained["data"], "--images", 1)
    assert code == 1 and "--overwrite" in _error_line(err)


def test_ctrl_c_saves_a_checkpoint_exit_130_and_resume_finishes(trained):
    code, _, err = trained["interrupted"]
    assert code == 130 and "interrupted at step 1 of 2" in err and "--resume" in err
    assert trained["state_after_interrupt"]["step"] == 1 and not trained["final_after_interrupt"]
    code, out, err = trained["resumed"]
    assert code == 0, err
    run = trained["run"]
    assert json.loads((run / "train_state.json").read_text())["step"] == 2
    assert "trained to step 2" in out
    for name in ("ssd300_final.pth", "ssd300_step000002.pth", "loss.png", "classes.txt", "train_setup.json"):
        assert (run / name).is_file(), name
    assert not (run / "ssd300_step000001.pth").exists()  # the previous checkpoint is replaced
    assert (run / "classes.txt").read_text().split() == ["disc", "square", "triangle"]


def test_resume_with_another_seed_is_refused(trained):
    code, _, err = _main(*_train_args(trained["data"], trained["run"], "--resume", "--seed", "1"))
    assert code == 2 and "seed" in _error_line(err)


def test_a_new_run_into_a_used_folder_needs_resume_or_overwrite(trained):
    code, _, err = _main(*_train_args(trained["data"], trained["run"]))
    assert code == 2 and "--resume" in _error_line(err)


def test_detect_writes_pixel_boxes_inside_each_image_and_drawings(trained, tmp_path):
    images = sorted((trained["data"] / "JPEGImages").glob("*.jpg"))[:2]
    out = tmp_path / "found"
    code, stdout, err = _main("detect", *images, "--weights", trained["run"] / "ssd300_final.pth", "-o", out,
                              "--threshold", "0.01")
    assert code == 0, err
    assert "profile rgb_mean, input 268 px" in stdout  # the run's size, read beside the weights
    for image in images:
        found = json.loads((out / f"{image.stem}.json").read_text())
        assert (out / f"{image.stem}_detections.png").is_file()
        assert found["detections"], "an untrained detector still scores above 0.01"
        for detection in found["detections"]:
            xmin, ymin, xmax, ymax = detection["box"]
            assert 0 <= xmin <= xmax <= found["width"] and 0 <= ymin <= ymax <= found["height"]
            assert detection["label"] in ("disc", "square", "triangle") and 0.01 <= detection["score"] <= 1


def test_detect_refuses_an_existing_output_without_overwrite(trained, tmp_path):
    image = sorted((trained["data"] / "JPEGImages").glob("*.jpg"))[0]
    out = tmp_path / "found"
    out.mkdir()
    (out / f"{image.stem}.json").write_text("mine")
    code, _, err = _main("detect", image, "--weights", trained["run"] / "ssd300_final.pth", "-o", out)
    assert code == 1 and "--overwrite" in _error_line(err)
    assert (out / f"{image.stem}.json").read_text() == "mine" and not (out / f"{image.stem}_detections.png").exists()


def test_detect_needs_class_names_for_a_foreign_checkpoint(trained, tmp_path):
    foreign = tmp_path / "ssd.pth"
    shutil.copyfile(trained["run"] / "ssd300_final.pth", foreign)  # no classes.txt beside it
    image = sorted((trained["data"] / "JPEGImages").glob("*.jpg"))[0]
    code, _, err = _main("detect", image, "--weights", foreign, "--size", SIZE, "-o", tmp_path / "out")
    assert code == 2 and "--classes" in _error_line(err)


def test_eval_detector_prints_aps_and_writes_json(trained, tmp_path):
    metrics = tmp_path / "metrics.json"
    code, out, err = _main("eval-detector", "--data", trained["data"], "--weights",
                           trained["run"] / "ssd300_final.pth", "-o", metrics)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["class", "objects", "AP", "VOC07", "AP", "area"]
    assert [line.split()[0] for line in lines[1:5]] == ["disc", "square", "triangle", "mAP"]
    payload = json.loads(metrics.read_text())
    assert [c["name"] for c in payload["classes"]] == ["disc", "square", "triangle"]
    assert payload["images"] == 4 and payload["size"] == 268 and 0 <= payload["map_voc07"] <= 1


def test_the_exported_pth_trains_on(trained):
    run2 = trained["tmp"] / "run2"
    code, out, err = _main("train-detector", "--data", trained["data"], "--init", trained["run"] / "ssd300_final.pth",
                           "--steps", "1", "--batch-size", "1", "--size", SIZE, "-o", run2)
    assert code == 0, err
    report = next(line for line in err.splitlines() if line.startswith("init "))
    assert "(a whole SSD300): copied" in report and "mismatch" not in report and "missing" not in report
    assert (run2 / "ssd300_final.pth").is_file() and "trained to step 1" in out


# ------------------------------------------------------------------------------------ bad datasets


def _first_xml(data: Path) -> Path:
    return sorted((data / "Annotations").glob("*.xml"))[0]


def _corrupt_xml(data: Path) -> None:
    _first_xml(data).write_text("<annotation><size><width>268</width>")


def _unknown_class(data: Path) -> None:
    path = _first_xml(data)
    path.write_text(re.sub(r"<name>\w+</name>", "<name>hexagon</name>", path.read_text(), count=1))


def _empty_image_set(data: Path) -> None:
    (data / "ImageSets" / "Main" / "trainval.txt").write_text("\n")


def _box_outside(data: Path) -> None:
    path = _first_xml(data)
    path.write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>10000</xmax>", path.read_text(), count=1))


@pytest.mark.parametrize("command", ["train-detector", "eval-detector"])
@pytest.mark.parametrize("spoil, says", [
    (_corrupt_xml, "corrupt XML"),
    (_unknown_class, "unknown class 'hexagon'"),
    (_empty_image_set, "empty image set"),
    (_box_outside, "lies outside the"),
], ids=["corrupt-xml", "unknown-class", "empty-image-set", "box-outside-image"])
def test_a_bad_dataset_is_one_error_line_and_makes_nothing(trained, tmp_path, spoil, says, command):
    data = tmp_path / "voc"
    shutil.copytree(trained["data"], data)
    spoil(data)
    if command == "train-detector":
        out = tmp_path / "run"
        args = _train_args(data, out)
    else:
        out = tmp_path / "metrics.json"
        args = ["eval-detector", "--data", data, "--weights", trained["run"] / "ssd300_final.pth", "-o", out]
    code, _, err = _main(*args)
    assert code == 1 and says in _error_line(err)
    assert not out.exists()


@pytest.mark.parametrize("flags, says", [
    (["--steps", "1", "--size", "200"], "smallest is 268"),
    ([], "--steps N or --epochs N"),
    (["--steps", "1", "--precision", "fp16"], "invalid choice"),
], ids=["size-too-small", "no-length", "bad-precision"])
def test_bad_training_options_exit_2(trained, tmp_path, flags, says):
    code, _, err = _main("train-detector", "--data", trained["data"], "--init", "random", "-o", tmp_path / "run",
                         *flags)
    assert code == 2 and says in err and not (tmp_path / "run").exists()


def test_an_absent_init_file_is_one_line_before_any_folder(trained, tmp_path):
    code, _, err = _main("train-detector", "--data", trained["data"], "--init", tmp_path / "absent.pth",
                         "--steps", "1", "-o", tmp_path / "run")
    assert code == 1 and "absent.pth" in _error_line(err) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, code, says", [
    (["--init", "random-vgg19", "--steps", "1"], 2, "the SSD300's base is a VGG16"),
    (["--init", "random", "--resume"], 1, "no training checkpoint to resume from"),
], ids=["init-not-a-vgg16", "resume-without-a-run"])
def test_an_init_or_resume_that_cannot_work_is_refused_before_any_folder(trained, tmp_path, flags, code, says):
    result, _, err = _main("train-detector", "--data", trained["data"], "-o", tmp_path / "run", *flags)
    assert result == code and says in _error_line(err) and not (tmp_path / "run").exists()


def test_make_voc_refuses_an_unknown_shape_in_one_line(tmp_path):
    code, _, err = _main("make-voc", tmp_path / "set", "--images", 1, "--classes", "disc,hexagon")
    assert code == 1 and "classes must be distinct names from" in _error_line(err) and not (tmp_path / "set").exists()
