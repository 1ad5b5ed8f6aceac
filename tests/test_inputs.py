"""The tools against bad input: options refused by name, folders with link loops, names that are not UTF-8 or
paths that do not exist, a full disk, strip images, unreadable OOD sets (issues 20 and 23). Each refusal is one
line naming the option or the file; nothing is lost and no figure is silently wrong."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcdo import cli


@pytest.mark.parametrize("argv,named", [
    (["probe", "--folds", "1", "--data", "world-size"], "--folds 1"),
    (["sweep", "--trials", "0"], "--trials 0"),
    (["ood", "--model", "tiny-clip", "--bs", "0"], "--bs 0"),
], ids=["folds", "trials", "bs"])
def test_integer_options_are_named_when_refused(argv, named, capsys):
    """Issue 20: --trials 0, --folds 1 and --bs 0 answered with library text instead of naming the option."""
    assert cli.main(argv) == 2
    assert named in capsys.readouterr().err


def test_an_out_that_is_a_file_is_named(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for cmd in (["sweep"], ["probe", "--data", "world-size"], ["bayes"], ["signatures"]):
        assert cli.main([*cmd, "--out", str(blocker)]) == 2
        assert "--out" in capsys.readouterr().err and blocker.read_text() == "x"


def test_an_unknown_timm_model_is_named(tmp_path, capsys):
    from mcdo.testing import make_image_folders

    root = make_image_folders(tmp_path / "data")
    assert cli.main(["signatures", "--model", "timm:no_such_vit", "--random-weights", "--data",
                     str(root / "imagenet" / "val"), "--out", str(tmp_path / "out")]) == 2
    assert "timm has no model 'no_such_vit'" in capsys.readouterr().err


def test_an_ood_set_with_no_readable_image_is_named(tmp_path, capsys):
    """Issue 20: an OOD set whose every file is unreadable crashed after the CLI's error handling."""
    from mcdo.testing import make_image_folders

    root = make_image_folders(tmp_path / "data")
    for f in (root / "SUN" / "images").iterdir():
        f.write_bytes(b"not an image")
    rc = cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(root), "--quiet",
                   "--out", str(tmp_path / "out")])
    assert rc == 2 and "none could be read" in capsys.readouterr().err


def test_a_link_loop_neither_repeats_nor_mislabels_images(tmp_path):
    """Issue 20: with cat/self -> . the cat images were listed 41 times, with cat/loop -> .. other classes' images
    were labelled cat. Each real folder is walked once, never out of the class folder; a broken link and a second
    name of an image are left out; all of it is named."""
    import os

    from mcdo.data.folders import class_folder, images_under

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            (tmp_path / c / f"{i}.jpg").write_bytes(b"x")
    os.symlink(".", tmp_path / "cat" / "self")
    os.symlink("..", tmp_path / "cat" / "loop")
    os.symlink("missing.jpg", tmp_path / "cat" / "broken.jpg")
    os.symlink("0.jpg", tmp_path / "dog" / "alias.jpg")
    with pytest.warns(UserWarning, match="left out"):
        f = class_folder(tmp_path)
    assert sorted(p.name for p in f.images.paths) == ["0.jpg", "0.jpg", "1.jpg", "1.jpg", "2.jpg", "2.jpg"]
    assert f.images.labels.tolist() == [0, 0, 0, 1, 1, 1]
    skipped = []
    with pytest.warns(UserWarning):
        images_under(tmp_path / "cat", skipped)
    assert {Path(p).name: why for p, why in skipped} == {"loop": f"a link out of {tmp_path / 'cat'}",
                                                        "self": "a link to a folder already listed",
                                                        "broken.jpg": "a link to no file"}


def test_a_name_that_is_not_utf8_is_left_out_by_name(tmp_path):
    """Issue 20: one file name with bytes that are not UTF-8 refused the whole run with a codec message naming no
    file. That file is left out and named; the others are read and keyed; a class folder so named is refused by
    name (its name would be a prompt)."""
    import os

    from mcdo.data.folders import MissingData, class_folder, content_key

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(2):
            (tmp_path / c / f"{i}.jpg").write_bytes(b"x")
    os.rename(os.fsencode(tmp_path / "cat" / "0.jpg"), os.fsencode(tmp_path / "cat") + b"/\xff\xfe.jpg")
    with pytest.warns(UserWarning, match=r"not UTF-8.*rename") as w:
        f = class_folder(tmp_path)
    assert "\\udcff" in str(w[0].message)  # the file named, escaped
    assert sorted(p.name for p in f.images.paths) == ["0.jpg", "1.jpg", "1.jpg"]
    assert len(content_key(f.images)) == 16
    os.rename(os.fsencode(tmp_path / "dog"), os.fsencode(tmp_path) + b"/d\xf6g")
    with pytest.raises(MissingData, match="not UTF-8"):
        class_folder(tmp_path)


def _disk_full_under(monkeypatch, folder: Path, after: int = 4096):
    """Every file opened for writing under ``folder`` takes ``after`` bytes, then fails as a full disk does."""
    import builtins
    import errno as errno_

    import mcdo.io

    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > after:
                raise OSError(errno_.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and str(Path(path).resolve()).startswith(str(folder.resolve())) else f

    monkeypatch.setattr(mcdo.io, "open", fake_open, raising=False)


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    """Issue 20: a full cache disk gave raw OSError tracebacks (bayes: 'enforce fail ... unexpected pos' from
    torch.save). A cache that cannot be written is named in a warning and the run finishes from memory; a report
    that cannot be written is one line naming the file, exit 1, and no partial file is left."""
    from mcdo.io import WriteFailed, torch_save_atomic
    from mcdo.testing import make_image_folders

    root = make_image_folders(tmp_path / "data")
    cache, out = tmp_path / "cache", tmp_path / "out"
    monkeypatch.setenv("MCDO_CACHE_DIR", str(cache))
    _disk_full_under(monkeypatch, cache, after=256)
    argv = ["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(root), "--quiet", "--out", str(out)]
    with pytest.warns(UserWarning, match="cache not kept: could not write .*No space left"):
        assert cli.main(argv) == 0
    (rows,) = list(out.glob("*.jsonl"))
    assert json.loads(rows.read_text().splitlines()[0])["provenance"]["device"] == "cpu"  # issue 23
    assert not [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 256]  # no prefix left behind
    with pytest.raises(WriteFailed, match=r"could not write .*x\.pt"):  # torch.save's own error, named
        torch_save_atomic(cache / "x.pt", {"a": __import__("torch").zeros(10000)})
    _disk_full_under(monkeypatch, out, after=100)
    for f in out.iterdir():
        f.unlink()
    assert cli.main(argv) == 1  # the cache has room now, the output folder has none
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not write" in err[0] and str(out) in err[0] and "MiB free" in err[0]
    assert not list(out.iterdir())


def test_a_strip_image_is_cropped_before_it_is_resized():
    """Issue 20: a 1 x 3000 strip cost 1.7 GB in 384-px preprocessing (short side resized to 384 first). The
    transform crops the long side to twice the short one first: the same output within half an output pixel on an
    ordinary wide image, a bounded one for the strip; a squash resize is left as it was."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    from mcdo.models import load
    from mcdo.zeroshot import StripCrop, bound_strips, image_transform

    enc = load("tiny-clip", pretrained=False)
    bounded, plain = image_transform(enc), enc.preprocess
    assert isinstance(bounded.transforms[0], StripCrop)
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(90, 400, 3)), 0), 1)  # a natural-ish image, smooth at pixel scale
    smooth = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    im = Image.fromarray(smooth)
    a, b = bounded(im), plain(im)
    assert a.shape == b.shape and (a - b).abs().mean() < 0.01 * b.abs().mean()  # another image: 0.47
    strip = Image.fromarray(rng.integers(0, 255, (1, 3000, 3), dtype=np.uint8))
    assert StripCrop()(strip).size == (2, 1) and bounded(strip).shape == (3, 32, 32)
    squash = T.Compose([T.Resize((32, 32)), T.ToTensor()])
    assert bound_strips(squash) is squash


@pytest.mark.parametrize("argv,named", [
    (["bayes", "--eval-data", "/nonexistent/food"], "--eval-data"),
    (["bayes", "--hessian-data", "./nope"], "--hessian-data"),
    (["probe", "--data", "/nonexistent"], "--data"),
    (["ood", "--model", "tiny-clip", "--data-root", "~/no/such/root"], "--data-root"),
    (["sweep", "--data", "world,/nonexistent"], "--data"),
    (["ood", "--model", "clip-vit-b-61"], "--model"),
    (["bayes", "--model", "proxy-softmx"], "--model"),
    (["probe", "--models", "proxy-softmax,sigclip", "--data", "world-size"], "--models"),
    (["sweep", "--models", "proxy-sigmoid,nope"], "--models")])
def test_a_missing_folder_is_answered_before_any_heavy_import(argv, named, capsys):
    """Issue 23: `mcdo bayes --eval-data /nonexistent` failed after 50 s of imports and loading. A folder option
    naming a path that does not exist, or a model name the registry does not hold, is one line, exit 2, from the
    argument check alone (in a fresh interpreter torch is not even imported)."""
    import subprocess
    import sys

    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"mcdo {argv[0]}: {named} ")
    code = f"import sys; from mcdo import cli; rc = cli.main({argv!r}); assert 'torch' not in sys.modules; sys.exit(rc)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 2


def test_an_unknown_model_name_suggests_the_closest_and_lists_the_registry(capsys):
    assert cli.main(["bayes", "--model", "proxy-softmx"]) == 2
    err = capsys.readouterr().err
    assert "did you mean proxy-softmax" in err and "registered: clip-vit-b-32," in err
    from mcdo.model_specs import unknown_model

    for fine in ("clip", "siglip2_b16", "timm:vit_tiny_patch16_224", "ViT-B-16:openai", f"ViT-B-16:{__file__}"):
        assert unknown_model(fine) is None, fine
    assert "ARCH:" in unknown_model(__file__)  # a bare file: a checkpoint needs its architecture (issue 23.1)


def test_every_option_says_its_default_in_help():
    """Issue 23: ``--help`` of every command answers what a run without each option does."""
    import argparse

    from mcdo import cli

    _, commands = cli.build_parser()
    assert {"claims", "ood", "bayes", "probe", "signatures", "sweep", "doctor"} <= set(commands)
    for name, parser in commands.items():
        parser.format_help()  # every help string expands (a stray % would raise here)
        for action in parser._actions:
            if action.nargs == 0 or action.default is None or action.default is argparse.SUPPRESS:
                continue
            expanded = parser._get_formatter()._expand_help(action)
            flag = action.option_strings[-1] if action.option_strings else action.dest
            assert "default" in expanded, f"mcdo {name} {flag}: no default in --help"
    for name, parser in commands.items():  # issue 36.8: every option has help, and no literal "%%" reaches a reader
        assert "%%" not in parser.format_help(), name
        undocumented = [a.option_strings[-1] for a in parser._actions
                         if a.option_strings and not a.help and a.help != argparse.SUPPRESS]
        assert not undocumented, (name, undocumented)
    seed = next(a for a in commands["ood"]._actions if "--seed" in a.option_strings)
    assert "(default: 0)" in commands["ood"]._get_formatter()._expand_help(seed)  # 0 is a default too


@pytest.mark.parametrize("argv,said", [
    (["sweep", "--p", ""], "give at least one value"),
    (["sweep", "--models", ""], "give at least one value"),
    (["sweep", "--p", "1.5"], "not below 1"),
    (["sweep", "--T", "0"], "0 is not a positive number"),
    (["bayes", "--prior-precision", "abc"], "argument --prior-precision: 'abc' is neither 'marglik'"),
    (["bayes", "--prior-precision", "-3"], "neither 'marglik' nor a finite positive number"),
    (["signatures", "--threshold", "nan"], "argument --threshold: 'nan' is not a finite positive number"),
    (["signatures", "--threshold", "-1"], "'-1' is not a finite positive number"),
])
def test_bad_option_values_are_usage_errors_naming_the_option(argv, said, capsys):
    """Issue 36.14: an empty list ran and printed an empty table; 'abc' said 'could not convert string to float'
    without the option; nan and -1 thresholds were accepted. Each is now argparse's usage error (exit 2)."""
    from mcdo.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and said in capsys.readouterr().err


def test_random_weights_never_replace_weights_the_user_named(tmp_path, capsys):
    """Issue 36.1: ``--random-weights`` with a checkpoint or tag ran random weights under the checkpoint's name.
    Issue 36.2: a toy without ``--random-weights`` stopped after the other models' heavy work. Both are refused
    from the names alone, before any work, naming the flag to change."""
    from mcdo.testing import make_probe_folder, save_open_clip_checkpoint

    ckpt = save_open_clip_checkpoint("mcdo-tiny-clip", tmp_path / "ft.pt")
    data = make_probe_folder(tmp_path / "probe")
    assert cli.main(["probe", "--models", f"mcdo-tiny-clip:{ckpt},tiny-clip", "--random-weights", "--data", str(data),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "names its weights" in err and "drop --random-weights" in err and "(mcdo-tiny-clip)" in err
    assert cli.main(["probe", "--models", f"mcdo-tiny-clip:{ckpt},tiny-clip", "--data", str(data),
                     "--out", str(tmp_path / "o")]) == 2
    assert "tiny-clip is a toy architecture with no pretrained weights: add --random-weights" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # refused before any work
    for argv in (["ood", "--model", "ViT-B-32:openai", "--random-weights"],
                 ["bayes", "--model", "google/siglip-base-patch16-224", "--random-weights"]):
        assert cli.main(argv) == 2
        assert "--random-weights would replace them" in capsys.readouterr().err


@pytest.mark.parametrize("argv,said", [
    (["ood", "--model", "tiny-clip", "--random-weights", "--ood-data", "/no/such/ood"],
     "--ood-data /no/such/ood: no such folder"),
    (["ood", "--model", "tiny-clip", "--random-weights", "--id-data", "/no/such/id", "--ood-data", "."],
     "--id-data /no/such/id: no such folder"),
    (["probe", "--models", "tiny-clip", "--random-weights", "--data", "/no/such/probe"], "no such folder"),
])
def test_a_missing_folder_is_one_line_saying_so(argv, said, capsys):
    """Issue 36.3: ``--id-data /missing`` said 'no class sub-folders' and never 'no such folder'; ``--ood-data
    /missing`` printed the whole usage block first. Now one line, exit 2."""
    from mcdo import cli

    assert cli.main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err and "usage:" not in err and len(err.strip().splitlines()) == 1
