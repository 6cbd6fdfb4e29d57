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


def test_the_labels_alone_do_not_give_the_default_sets_groups(tmp_path, capsys):
    """Generator version 4 (the default): no two attributes correlate, so the label tree's
    grouping is chance (version 3's fixture above: ARI 1.000)."""
    from gnas_keras_pipelines import synthetic
    path = str(tmp_path / "v4")
    synthetic.generate(path, seed=0, num_shards=1, image_size=8,
                       sizes={"train": 2048, "validation": 8, "test": 8})
    assert label_tree.main([f"--data_dir={path}", "--sizes=", "--draws=1"]) == 0
    out = capsys.readouterr().out
    assert "12 attributes, 2048 training labels" in out
    ari = float(out.split("every training label: ARI ")[1].split()[0])
    assert ari < 0.3, out
