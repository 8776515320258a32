"""Preset names and the data-directory search of detloss.load_config (the same rules as
`detloss eval NAME`): $DETLOSS_DATA_DIR, the copy installed with the package, the source
checkout, then the current directory; anchor files and data sets through the same search."""
import json
import os

import pytest

import detloss


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A current directory outside the source tree, no DETLOSS_DATA_DIR."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DETLOSS_DATA_DIR", raising=False)
    return tmp_path


def test_a_preset_name_loads_from_any_directory_with_its_data_set(elsewhere):
    cfg = detloss.load_config("torchvision_retinanet_r50_fpn")
    assert os.path.isabs(cfg.path) and cfg.path.endswith(
        os.path.join("configs", "torchvision_retinanet_r50_fpn.json"))
    assert cfg.dataset_path.endswith("coco2017_subset.json")
    assert "torchvision_retinanet_r50_fpn" in detloss.config_presets()


def test_data_dir_env_comes_first_and_resolves_anchors_and_data(elsewhere, monkeypatch):
    dd = elsewhere / "dd"
    write(dd / "configs" / "torchvision_retinanet_r50_fpn.json",
          {"name": "shadowing preset", "head": "retinanet",
           "anchors": "torchvision_retinanet.json", "dataset": "tiny.json"})
    # one 64 x 64 image with one 32 x 32 box
    write(dd / "data" / "tiny.json",
          {"images": [{"width": 64, "height": 64, "boxes": [[0, 0, 32, 32]]}]})
    monkeypatch.setenv("DETLOSS_DATA_DIR", str(dd))
    cfg = detloss.load_config("torchvision_retinanet_r50_fpn")
    assert cfg.name == "shadowing preset"
    assert cfg.dataset_path == os.path.join(str(dd), "data", "tiny.json")
    assert cfg.anchors_path.endswith(os.path.join("anchors", "torchvision_retinanet.json"))
    assert cfg.evaluate()["num_gt"] == 1
    # a preset only in the next directory is still found
    assert detloss.load_config("detectron2_rpn").head == "rpn"


def test_an_unknown_preset_names_a_near_miss_and_the_presets(elsewhere):
    with pytest.raises(detloss.DetlossError) as e:
        detloss.load_config("detectron2_rpm")
    assert e.value.status_name == "not_found" and e.value.where == "path"
    assert "unknown preset 'detectron2_rpm' (did you mean 'detectron2_rpn'?)" in e.value.message
    assert ("presets: atss_r50_fpn, detectron2_retinanet, detectron2_rpn, detr_r50"
            in e.value.message)
    with pytest.raises(detloss.DetlossError) as e:
        detloss.load_config("torchvision_retinanet")
    assert "did you mean 'torchvision_retinanet_r50_fpn'?" in e.value.message


def test_a_name_with_a_slash_or_json_ending_is_a_path_from_the_current_directory(elsewhere):
    for name in ("torchvision_retinanet_r50_fpn.json", "./torchvision_retinanet_r50_fpn"):
        with pytest.raises(detloss.DetlossError) as e:
            detloss.load_config(name)
        assert e.value.status_name == "not_found" and "preset" not in e.value.message
    write(elsewhere / "cwd" / "mine.json",
          {"name": "mine", "anchors": "torchvision_fpn.json", "dataset": "coco2017_subset.json"})
    cfg = detloss.load_config("mine.json")
    assert cfg.name == "mine" and cfg.dataset_path.endswith("coco2017_subset.json")
