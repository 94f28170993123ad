"""The report's first screen and the sentences it shares with the sections below."""

from genre_hpc.flow import headline


def test_the_genres_a_side_lacks_are_named_beside_its_scores():
    # the shape a split=fma run on real metadata gives: a genre on one side only
    metrics = {
        "segment_accuracy": 0.5, "track_accuracy": 0.6, "track_macro_f1": 0.4,
        "test_segments": 40, "test_tracks": 4,
        "track_accuracy_interval": {"low": 0.2, "high": 1.0, "level": 0.95, "method": "bootstrap"},
        "split": {"name": "fma", "description": "the corpus's own sides", "leaky": False,
                  "labels_absent_from_training": ["Spoken"], "labels_absent_from_test": ["Blues", "Folk"]},
    }  # fmt: skip
    text = headline.held_out_text(metrics)
    assert "not on the training side" in text and ": Spoken." in text
    assert "not on the test side (trained on, not scored): Blues, Folk." in text
    assert "0.600 (95% CI 0.200-1.000)" in text and "(on 4 tracks)" in text and "(on 40 segments)" in text
    metrics["split"].update(labels_absent_from_training=[], labels_absent_from_test=[])
    assert "Genres" not in headline.held_out_text(metrics)
