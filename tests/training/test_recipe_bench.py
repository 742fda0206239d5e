"""bench/recipe.py: the learning-curve script runs the configured recipe end to end."""

import json

from tests.training.conftest import run_python, tiny_overrides


def test_recipe_bench_prints_one_learning_curve_point_per_eval(tiny_data, tmp_path):
    overrides = tiny_overrides(tiny_data, tmp_path, model="gffnet")
    result = run_python(["bench/recipe.py", "--steps", "4", "--eval-every", "2",
                         "--threads", "1"] + overrides)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    header, points = lines[0], lines[1:]
    assert header["case"] == overrides and header["params"] > 0
    assert [p["step"] for p in points] == [2, 4]
    for point in points:
        assert 0.0 <= point["val_miou"] <= 1.0 and 0.0 <= point["train_miou"] <= 1.0
        assert len(point["iou"]) == 7 and point["loss"] > 0


def test_recipe_bench_rejects_steps_not_multiple_of_eval_every():
    result = run_python(["bench/recipe.py", "--steps", "5", "--eval-every", "2"])
    assert result.returncode != 0
    assert "--steps must be a positive multiple of --eval-every" in result.stderr


def test_recipe_bench_bad_config_value_gives_one_error_line(tiny_data, tmp_path):
    overrides = tiny_overrides(tiny_data, tmp_path) + ["data.batch_size=-2"]
    result = run_python(["bench/recipe.py", "--steps", "2", "--eval-every", "2"] + overrides)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("recipe.py")]
    assert errors == ["recipe.py: error: data.batch_size must be >= 1, got -2"]
    assert "Traceback" not in result.stderr
