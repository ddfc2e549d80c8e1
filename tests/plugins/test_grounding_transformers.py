"""Our Kosmos-2 and Florence-2 parsers against transformers' own post-processing on the same strings.

Kosmos-2's helpers (`clean_text_and_extract_entities_with_bboxes`) are plain functions. Florence-2's
`post_process_generation` needs a Florence2Processor; one is built offline from a locally constructed word-level
tokenizer (the post-processor only needs the tokenizer's special tokens when given text) and a CLIP image
processor, with the post-processing config of the Florence-2 checkpoints (the same dict transformers' own
processor test uses). transformers truncates Florence coordinates to int; ours are bin centres, so within 1 px.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.geometry import Box, Polygon
from assistant_plugins.grounding import florence, kosmos

from test_grounding_published import OD_CAR, OVD_WHEELS, PROPOSALS, SEGMENTATION, SNOWMAN

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)

# --- Kosmos-2 ------------------------------------------------------------------------------------------------


def transformers_kosmos_boxes(text, size):
    from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes

    _, entities = clean_text_and_extract_entities_with_bboxes(text)
    width, height = size
    out = []
    for name, _, boxes in entities:
        label = "" if name.startswith("<patch_index_") else name
        out.extend((x1 * width, y1 * height, x2 * width, y2 * height, label) for x1, y1, x2, y2 in boxes)
    return out


def as_tuples(shapes):
    return [(s.x1, s.y1, s.x2, s.y2, s.label) for s in shapes]


KOSMOS_CASES = [
    SNOWMAN,
    # several objects for one phrase, and an object without a phrase
    "<grounding> Two<phrase> dogs</phrase><object><patch_index_0100><patch_index_0400></delimiter_of_multi_objects/>"
    "<patch_index_0520><patch_index_0925></object> and<object><patch_index_0033><patch_index_0033></object>.",
    # same row, same column: full-patch extents
    "<phrase> a rope</phrase><object><patch_index_0064><patch_index_0095></object><phrase> a pole</phrase>"
    "<object><patch_index_0010><patch_index_1002></object>",
]


@pytest.mark.parametrize("text", KOSMOS_CASES)
def test_kosmos2_boxes_equal_transformers(text):
    ours = kosmos.parse(text, (640, 480)).shapes
    assert as_tuples(ours) == pytest.approx(transformers_kosmos_boxes(text, (640, 480)))
    assert ours


@st.composite
def kosmos_replies(draw):
    parts = ["<grounding>"]
    for _ in range(draw(st.integers(1, 4))):
        phrase = draw(st.from_regex(r"[a-z]{2,8}( [a-z]{2,8})?", fullmatch=True))
        pairs = []
        for _ in range(draw(st.integers(1, 3))):
            ul_col, ul_row = draw(st.integers(0, 31)), draw(st.integers(0, 31))
            lr_col, lr_row = draw(st.integers(ul_col, 31)), draw(st.integers(ul_row, 31))
            pairs.append(f"<patch_index_{ul_row * 32 + ul_col:04d}><patch_index_{lr_row * 32 + lr_col:04d}>")
        parts.append(f" word<phrase> {phrase}</phrase><object>{'</delimiter_of_multi_objects/>'.join(pairs)}</object>")
    return "".join(parts) + "."


@SETTINGS
@given(text=kosmos_replies(), size=st.tuples(st.integers(64, 4000), st.integers(64, 4000)))  # real images; below ~10 px distinct boxes collapse in the 0.1 px dedupe
def test_kosmos2_random_replies_equal_transformers(text, size):
    ours = as_tuples(kosmos.parse(text, size).shapes)
    theirs = transformers_kosmos_boxes(text, size)
    deduped = list(dict.fromkeys((round(a, 6), round(b, 6), round(c, 6), round(d, 6), e) for a, b, c, d, e in theirs))
    assert [tuple(round(v, 6) if isinstance(v, float) else v for v in t) for t in ours] == deduped


# --- Florence-2 ----------------------------------------------------------------------------------------------

POST_PROCESSOR_CONFIG = {
    "ocr": {"pattern": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>",
            "area_threshold": 0.0},
    "phrase_grounding": {"banned_grounding_tokens": ["the image"]},
    "pure_text": {},
    "description_with_bboxes": {},
    "description_with_polygons": {},
    "polygons": {},
    "bboxes": {},
    "description_with_bboxes_or_polygons": {},
}


@pytest.fixture(scope="module")
def florence_processor():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPImageProcessor, Florence2Processor, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, "<image>": 4}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    image_processor = CLIPImageProcessor()
    image_processor.image_seq_length = 2
    return Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                              post_processor_config=POST_PROCESSOR_CONFIG)


def close(a, b, tol=1.0):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.mark.parametrize(("text", "task", "size"), [
    (OD_CAR, "<OD>", (640, 480)),
    (OVD_WHEELS, "<OPEN_VOCABULARY_DETECTION>", (640, 480)),
    (PROPOSALS, "<REGION_PROPOSAL>", (1300, 876)),
    ("</s><s>A green car<loc_53><loc_331><loc_909><loc_780>a yellow building<loc_2><loc_8><loc_998><loc_635></s>",
     "<CAPTION_TO_PHRASE_GROUNDING>", (640, 480)),
])
def test_florence2_boxes_equal_post_process_generation(florence_processor, text, task, size):
    result = florence_processor.post_process_generation(text=text, task=task, image_size=size)[task]
    labels = result.get("labels", result.get("bboxes_labels"))
    ours = florence.parse(text, size).shapes
    assert len(ours) == len(result["bboxes"])
    for shape, bbox, label in zip(ours, result["bboxes"], labels):
        assert isinstance(shape, Box) and shape.label == label
        assert close((shape.x1, shape.y1, shape.x2, shape.y2), bbox)


def test_florence2_ocr_quads_equal_post_process_generation(florence_processor):
    text = ("</s><s>Hello<loc_100><loc_100><loc_200><loc_100><loc_200><loc_200><loc_100><loc_200>World<loc_300>"
            "<loc_310><loc_400><loc_300><loc_410><loc_400><loc_300><loc_390></s>")
    result = florence_processor.post_process_generation(text=text, task="<OCR_WITH_REGION>",
                                                        image_size=(640, 480))["<OCR_WITH_REGION>"]
    ours = florence.parse(text, (640, 480)).shapes
    assert [s.label for s in ours] == result["labels"] == ["Hello", "World"]
    for shape, quad in zip(ours, result["quad_boxes"]):
        assert isinstance(shape, Polygon)
        assert close([v for p in shape.points for v in p], quad)


def test_florence2_segmentation_equals_post_process_generation(florence_processor):
    task = "<REFERRING_EXPRESSION_SEGMENTATION>"
    result = florence_processor.post_process_generation(text=SEGMENTATION, task=task, image_size=(640, 480))[task]
    (polygon,) = florence.parse(SEGMENTATION, (640, 480)).shapes
    assert close([v for p in polygon.points for v in p], result["polygons"][0][0])


@st.composite
def florence_od_replies(draw):
    parts = ["</s><s>"]
    for _ in range(draw(st.integers(1, 4))):
        parts.append(draw(st.from_regex(r"[a-z]{2,8}( [a-z]{2,8})?", fullmatch=True)))
        for _ in range(draw(st.integers(1, 3))):
            x1, y1 = draw(st.integers(0, 997)), draw(st.integers(0, 997))
            x2, y2 = draw(st.integers(x1 + 1, 999)), draw(st.integers(y1 + 1, 999))
            parts.append(f"<loc_{x1}><loc_{y1}><loc_{x2}><loc_{y2}>")
    return "".join(parts) + "</s>"


@SETTINGS
@given(text=florence_od_replies(), size=st.tuples(st.integers(1, 3000), st.integers(1, 3000)))
def test_florence2_random_od_replies_equal_post_process_generation(florence_processor, text, size):
    result = florence_processor.post_process_generation(text=text, task="<OD>", image_size=size)["<OD>"]
    ours = florence.parse(text, size).shapes
    ours_boxes = [((s.x1, s.y1, s.x2, s.y2), s.label) for s in ours]
    theirs = list(zip(result["bboxes"], result["labels"]))
    # the same boxes both ways (ours drops exact duplicates, transformers keeps them)
    assert all(any(label == l2 and close(box, b2) for b2, l2 in theirs) for box, label in ours_boxes)
    assert all(any(label == l2 and close(b2, box) for b2, l2 in ours_boxes) for box, label in theirs)
