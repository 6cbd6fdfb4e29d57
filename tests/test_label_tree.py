"""benchmarks/label_tree.py: the labels-alone baseline for a planted grouping."""

from benchmarks import label_tree


def test_the_labels_alone_give_the_small_synthetic_sets_groups(synthetic_dir, capsys):
    assert label_tree.main([f"--data_dir={synthetic_dir}", "--sizes=256,100000",
                            "--draws=3"]) == 0
    out = capsys.readouterr().out
    assert "384 training labels" in out
    assert "every training label: ARI 1.000" in out
    assert "256 labels: ARI mean" in out and "100000 labels" not in out  # larger: skipped


def test_a_folder_without_a_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    assert label_tree.main([f"--data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("label_tree: error: ") and "metadata.json" in err
    assert len(err.splitlines()) == 1
