"""Configs (configs/*.json) and data sets through the binding, against the CLI
(`detloss anchors`, `detloss eval --json`) built next to the library."""
import ctypes
import json
import os
import subprocess

import numpy as np
import pytest

import detloss

CLI = os.path.join(os.path.dirname(os.path.realpath(detloss.library_path)), "detloss")
need_cli = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason="no detloss CLI beside the library")
CONFIGS = detloss.config_presets()

DATASET = {"images": [
    {"width": 320, "height": 256, "boxes": [[10, 10, 60, 80], [100, 50, 300, 250], [5, 5, 12, 14]]},
    {"width": 320, "height": 256, "boxes": []},
    {"width": 320, "height": 240, "boxes": [[0, 0, 330, 100], [40, 40, 90, 70]],
     "iscrowd": [0, 1]}]}


def test_the_source_tree_configs_are_found():
    assert "torchvision_retinanet_r50_fpn" in CONFIGS and len(CONFIGS) >= 5


@need_cli
@pytest.mark.parametrize("name", CONFIGS)
def test_config_anchors_equal_detloss_anchors(name, tmp_path):
    cfg = detloss.load_config(name)
    assert cfg.name and cfg.head in ("none", "rpn", "retinanet")
    if cfg.kind == "shapes":
        assert cfg.shapes.shape[1] == 2
        return
    if cfg.kind == "none":  # a point-based or dynamic assigner: the CLI refuses, one line
        assert cfg.assigner in ("fcos", "simota", "task_aligned", "hungarian")
        r = subprocess.run([CLI, "anchors", cfg.path], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == "" and "has no anchor set" in r.stderr
        return
    out = tmp_path / "a.json"
    subprocess.run([CLI, "anchors", cfg.path, "--image-size", "96", "128", "-o", str(out)],
                   check=True, capture_output=True)
    ref = np.asarray(json.loads(out.read_text())["anchors"], np.float32)
    np.testing.assert_array_equal(cfg.anchors((96, 128)), ref)


@need_cli
@pytest.mark.parametrize("name", CONFIGS)
def test_config_evaluate_equals_detloss_eval(name, tmp_path):
    cfg = detloss.load_config(name)
    ds_path = tmp_path / "ds.json"
    ds_path.write_text(json.dumps(DATASET))
    if cfg.assigner not in ("max_iou", "atss", "fcos"):  # eval refuses, here and in the CLI
        r = subprocess.run([CLI, "eval", cfg.path, "--dataset", str(ds_path)],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "assigner.method" in r.stderr
        with pytest.raises(detloss.DetlossError) as e:
            cfg.evaluate(str(ds_path))
        assert e.value.where == "assigner.method"
        return
    ref = json.loads(subprocess.run([CLI, "eval", cfg.path, "--dataset", str(ds_path), "--json"],
                                    check=True, capture_output=True, text=True).stdout)
    ds = detloss.load_dataset(str(ds_path))
    rep = cfg.evaluate(ds)
    fcos = cfg.assigner == "fcos"  # FCOS counts points (JSON "num_points") and out-of-range gts
    for k in ("num_gt", "num_recalled", "num_images", "num_images_empty", "num_boxes",
              "num_crowd", "num_clipped", "num_anchors"):
        assert rep[k] == ref["num_points" if fcos and k == "num_anchors" else k], k
    if fcos:
        assert rep["num_out_of_range"] == ref["num_out_of_range"]
        assert rep["num_gt"] - rep["num_recalled"] == ref["positives_hist"]["0"]
    for k in ("recall", "mean_best", "anchors_per_gt", "positives_per_gt"):
        assert rep[k] == pytest.approx(ref[k], rel=1e-8, abs=1e-12), k  # JSON: 9 digits
    # the same through the generic entry point, with the data set as dicts
    rep2 = cfg.evaluate(DATASET["images"])
    assert rep2["num_gt"] == rep["num_gt"] and rep2["mean_best"] == rep["mean_best"]


def test_datasets_read_back_as_arrays():
    ds = detloss.Dataset.parse(json.dumps(DATASET))
    assert (ds.num_images, ds.num_boxes, len(ds)) == (3, 5, 3)
    np.testing.assert_array_equal(ds.box_start, [0, 3, 3, 5])
    np.testing.assert_array_equal(ds.image_hw[2], [240, 320])
    np.testing.assert_array_equal(ds.is_crowd, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds.images()[0]["boxes"][1], [100, 50, 300, 250])


def test_coco_files_are_converted_to_xyxy():
    coco = {"images": [{"id": 7, "width": 100, "height": 50}],
            "annotations": [{"image_id": 7, "bbox": [10, 5, 20, 30], "iscrowd": 0,
                             "category_id": 1}]}
    ds = detloss.Dataset.parse(json.dumps(coco), "coco.json")
    assert ds.is_coco
    np.testing.assert_array_equal(ds.boxes, [[10, 5, 30, 35]])


def test_config_errors_name_the_file_and_json_path():
    with pytest.raises(detloss.DetlossError) as e:
        detloss.Config.parse('{"anchors": {"boxes": [[0, 0, 1, 1]]}, "matcher": {"hihg": 1}}',
                             "x.json")
    assert "x.json" in e.value.where and "matcher.hihg" in e.value.where
    assert e.value.status_name == "unknown" and "high" in e.value.message
    with pytest.raises(detloss.DetlossError) as e:
        detloss.load_config("no_such_config")
    assert e.value.status_name == "not_found"


def test_a_configs_loss_settings_drive_the_head_losses(rng):
    cfg = detloss.load_config("torchvision_retinanet_r50_fpn")
    a = detloss.grid_anchors([96, 96], [[6, 6]], [[24]], [[0.5, 1, 2]])
    im = {"anchors": a, "gt": [[10, 10, 50, 60]], "labels": [1],
          "cls_logits": rng.normal(size=(len(a), 3)).astype(np.float32),
          "deltas": np.zeros((len(a), 4), np.float32)}
    r1 = detloss.retina_loss([im], 3, config=cfg)
    r2 = detloss.retina_loss([im], 3)  # torchvision defaults = this config's settings
    assert r1["loss_cls"] == r2["loss_cls"] and r1["num_pos"] == r2["num_pos"]
    r3 = detloss.retina_loss([im], 3, config=cfg, fg_iou_thresh=0.3, bg_iou_thresh=0.2)
    assert r3["num_pos"] >= r1["num_pos"]
    o = detloss.rpn_options(detloss.load_config("detectron2_rpn"))
    assert o.convention == 1  # detectron2's fixed normalizer


_YOLO = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "yolo")


def test_a_yolo_label_directory_loads_with_its_image_headers_or_a_given_size():
    ds = detloss.load_dataset(os.path.join(_YOLO, "ok"))
    assert ds.num_images == 3 and ds.num_boxes == 3
    sized = detloss.load_dataset(os.path.join(_YOLO, "ok"), image_size=(100, 200))
    assert sized.num_images == 3 and sized.num_boxes == 3
    b = np.ctypeslib.as_array(ctypes.cast(sized.c.boxes, ctypes.POINTER(ctypes.c_float)),
                              shape=(sized.num_boxes, 4))
    # a.txt "0 0.5 0.5 0.25 0.5" at 100 x 200: cx 50, cy 100, w 25, h 100
    # -> [37.5, 50, 62.5, 150] (exact in float32)
    assert [37.5, 50.0, 62.5, 150.0] in b.tolist()


def test_yolo_errors_name_the_file_and_line_and_bad_options_name_the_argument():
    with pytest.raises(detloss.DetlossError) as e:
        detloss.load_dataset(os.path.join(_YOLO, "four_columns"))
    assert "line" in str(e.value) and ".txt" in str(e.value)
    with pytest.raises(TypeError, match="image_size"):
        detloss.load_dataset(os.path.join(_YOLO, "ok"), image_size=(1, 2, 3))
    with pytest.raises(detloss.DetlossError, match="image_size"):
        detloss.load_dataset(os.path.join(_YOLO, "ok"), image_size=("a", 2))


def test_config_evaluate_counts_fcos_positives_of_the_tiny_case():
    """The hand-worked case of tests/test_anchor_eval.c (fcos_positives_of_a_tiny_image_are_
    hand_checked): gt 0 has 4 positives of centerness 0.2, gt 1 (64 x 64) is outside both
    ranges, gt 2 (4 x 4) has no point inside it."""
    fx = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "anchor_eval")
    cfg = detloss.load_config(os.path.join(fx, "fcos_tiny_config.json"))
    rep, per = cfg.evaluate(return_per_gt=True)
    assert (rep["num_gt"], rep["num_recalled"], rep["num_anchors"]) == (3, 1, 20)
    assert rep["num_out_of_range"] == 1 and rep["level_pos"] == [4, 0]
    assert list(per["num_pos"]) == [4, 0, 0] and list(per["num_fit"]) == [5, 20, 0]
    assert list(per["out_of_range"]) == [0, 1, 0]
    assert per["best"][0] == pytest.approx(0.2, rel=1e-6)
