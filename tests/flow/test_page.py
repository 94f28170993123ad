"""The report page's building blocks: counts print whole, figures are copied beside the page, stale
ones are removed."""

import pandas as pd

from genre_hpc.flow.page import Page, leak_note


def test_counts_print_as_whole_numbers_and_scores_to_three_decimals():
    # scikit-learn's classification report gives support as a float: 2.0 must not print "2.000"
    frame = pd.DataFrame(
        {"genre": ["jazz", "rock"], "f1-score": [0.5, 1.0], "support": [2.0, 13.0],
         "test_tracks": [20.0, 21.0], "test segments": [200.0, 210.0], "folds": [4.0, 4.0],
         "mean over folds": [0.25, 1.0]}
    )  # fmt: skip
    text = Page.table(frame)
    for count in ("2", "13", "20", "21", "200", "210", "4"):
        assert f"<td>{count}</td>" in text
    assert "2.000" not in text and "13.000" not in text and "4.000" not in text
    # a score stays a score, "over folds" or not
    assert "<td>0.500</td>" in text and "<td>1.000</td>" in text and "<td>0.250</td>" in text


def test_a_table_caption_says_what_its_numbers_are():
    text = Page.table(pd.DataFrame({"support": [3]}), caption="per track, on the test side")
    assert text.index("<caption>per track, on the test side</caption>") < text.index("<thead")


def test_copied_figures_stand_beside_the_page_and_stale_ones_go(tmp_path):
    source = tmp_path / "confusion_matrix.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\nmatrix")
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "comparison_grouped.png").write_bytes(b"\x89PNG\r\n\x1a\nold")  # an earlier report's
    page = Page(folder)
    figure = page.copy(source, "headline_", "confusion <matrix>", name="confusion.png")
    assert (folder / "headline_confusion.png").read_bytes() == source.read_bytes()
    assert '<img src="headline_confusion.png" alt="confusion &lt;matrix&gt;">' in figure
    removed = page.prune(Page.document([figure]))
    assert [p.name for p in removed] == ["comparison_grouped.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["headline_confusion.png"]


def test_only_a_leaky_split_carries_the_warning():
    assert "LEAKY" in leak_note(True) and leak_note(False) == ""
