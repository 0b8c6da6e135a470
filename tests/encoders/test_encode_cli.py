"""``crossrec encode`` end to end on the generated demo data: counts printed, a full report
written, nothing encoded on the second run, one-line errors on bad configuration."""

import json

import pytest

from crossrec.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from crossrec.data.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"), n_users=30, n_items=40)


def _encode(demo, store, *extra):
    return main(["encode", "--dataset", "demo", "--data-dir", str(demo), "--modalities", "text",
                 "--store", str(store), "--no-progress", *extra])


def test_encode_twice_reports_counts_and_caches(demo, tmp_path, capsys):
    store = tmp_path / "store"
    assert _encode(demo, store, "--report", str(tmp_path / "r1.json")) == 0
    out = capsys.readouterr().out
    assert "text: 40 items, 40 encoded, 0 cached, 0 missing input, 0 failed" in out
    rep = json.loads((tmp_path / "r1.json").read_text())
    text = rep["modalities"]["text"]
    assert (text["n_items"], text["n_encoded"], text["dim"], text["n_present"]) == (40, 40, 384, 40)
    assert text["fingerprint"].startswith("st:all-MiniLM-L6-v2@") and text["failures"] == {}

    assert _encode(demo, store) == 0                   # default report path, second run
    out = capsys.readouterr().out
    assert "text: 40 items, 0 encoded, 40 cached, 0 missing input, 0 failed" in out
    reports = list((store / "reports").glob("*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["modalities"]["text"][
        "n_cached"] == 40


@pytest.mark.parametrize("config, message", [
    ('[encoders.text]\nmodel = "/no/such/model"\n', "text model path '/no/such/model' does not exist"),
    ('[encoders.text]\nkind = "nope"\n', "unknown encoder kind 'nope'; available:"),
    ('[encoders.text]\nbatch_sise = 8\n', "encoders.text.batch_sise: Extra inputs are not permitted"),
    ('[encoders.text]\nbatch_size = 0\n', "encoders.text.batch_size: Input should be greater"),
    ('[encoders.smell]\nkind = "nose"\n', "[encoders.smell]: unknown modality"),
    ('modalities = ["text"]\n', "unknown key(s) ['modalities']"),
    ('[encoders.text]\noptions = {normalise = true}\n', "unknown option 'normalise'"),
])
def test_bad_config_is_one_clean_line(demo, tmp_path, capsys, config, message):
    path = tmp_path / "encode.toml"
    path.write_text(config)
    assert _encode(demo, tmp_path / "store", "--config", str(path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crossrec: error:") and message in err and "\n" not in err


def test_unknown_template_field_is_one_clean_line(demo, tmp_path, capsys):
    assert _encode(demo, tmp_path / "store", "--template", "{title} {plot}") == 2
    assert "template field {plot} is unknown" in capsys.readouterr().err
