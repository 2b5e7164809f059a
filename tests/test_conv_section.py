"""The conv section's filter-pruning and per-layer tables (bench/report/conv.py), from records
written by hand, so each number can be checked."""

from bench.report.conv import _filter_table, _layer_table

D = "fashion_mnist_32"


def _acc(method, scope, stage, sparsity, accuracy):
    return {"dataset": D, "method": method, "scope": scope, "stage": stage, "sparsity": sparsity,
            "accuracy": accuracy}


def _lat(fmt, method, sparsity, batch, median_s):
    return {"dataset": D, "format": fmt, "method": method, "sparsity": sparsity, "batch": batch,
            "median_s": median_s, "stage": "oneshot"}


def test_filter_table_gives_accuracy_cost_and_shrunk_speed_up():
    results = {"conv": {D: {"dense_accuracy": 0.93}},
               "accuracy": [_acc("unit", "layer", "oneshot", 0.5, 0.41), _acc("unit", "layer", "finetuned", 0.5, 0.915),
                            _acc("weight", "layer", "finetuned", 0.5, 0.99)],
               "latency": [_lat("dense", "weight", 0.0, 1, 4e-3), _lat("shrunk", "unit", 0.5, 1, 2e-3),
                           _lat("dense", "unit", 0.5, 1, 3.9e-3)]}
    text = _filter_table(results, D)
    assert "| 0.50 | 41.00% | 91.50% | -1.5 | 2 | 2.00x |" in text
    assert _filter_table({**results, "accuracy": results["accuracy"][:1]}, D) == ""  # nothing fine-tuned


def test_layer_table_sums_roles_and_shares():
    def rec(fmt, layer, role, ms):
        return {"dataset": D, "format": fmt, "sparsity": 0.9, "batch": 1, "layer": layer, "role": role,
                "median_s": ms / 1e3}

    results = {"layers": [rec("dense", 0, "stem conv", 1.0), rec("dense", 1, "depthwise", 2.0),
                          rec("dense", 2, "depthwise", 1.0), rec("sparse_conv", 0, "stem conv", 0.5),
                          rec("sparse_conv", 1, "depthwise", 1.0), rec("sparse_conv", 2, "depthwise", 0.5)],
               "latency": [{**_lat("sparse_conv", "weight", 0.9, 1, 2.2e-3)}]}
    text = _layer_table(results, D)
    assert "| stem conv | 1 (25%) / 0.5 (25%) |" in text
    assert "| depthwise | 3 (75%) / 1.5 (75%) |" in text
    assert "| whole network (sum) | 4 / 2 |" in text and "| whole network (suite) | - / 2.2 |" in text


def test_latency_table_gives_sparse_conv_against_the_fastest_dense_engine():
    from bench.report.conv import _latency_table

    lat = [_lat("dense", "weight", 0.0, 1, 4e-3), _lat("tflite", "weight", 0.0, 1, 1e-3),
           _lat("sparse_conv", "weight", 0.0, 1, 3e-3), _lat("dense", "weight", 0.9, 1, 4e-3),
           _lat("tflite", "weight", 0.9, 1, 0.9e-3), _lat("sparse_conv", "weight", 0.9, 1, 0.5e-3)]
    results = {"latency": lat, "formats": {"dense": {"kind": "baseline", "computes": "dense"},
                                           "tflite": {"kind": "engine", "computes": "dense"},
                                           "sparse_conv": {"kind": "sparse", "computes": "sparse"}}}
    text = _latency_table(results, D)
    assert "sparse_conv vs fastest dense engine" in text
    assert "| 1 | 0.90 | 4 | 0.9 | 0.5 | 4.44x | 8.00x | 2.00x (tflite) | sparse_conv |" in text
    assert "| 1 | 0.00 | 4 | 1 | 3 | 4.00x | 1.33x | 0.33x (tflite) | tflite |" in text
