"""Every grounding format parses its published example outputs to the right original-image pixels.

Each case cites where the model output (and, where known, the image size or the reference decoding) comes from.
"""

from __future__ import annotations

import math
import re

import pytest

from assistant.geometry import Box, Point, Polygon
from assistant_plugins.grounding import (
    cogvlm,
    florence,
    gemini,
    internvl,
    kosmos,
    molmo,
    paligemma,
    qwen,
    uitars,
)
from assistant_plugins.grounding.common import smart_resize


def assert_boxes(shapes, expected, tol=1.0):
    """`shapes` are Boxes matching `expected` [(x1, y1, x2, y2, label), ...] within `tol` pixels, in order."""
    assert [type(s) for s in shapes] == [Box] * len(expected), shapes
    for shape, (x1, y1, x2, y2, label) in zip(shapes, expected):
        assert shape.label == label
        for got, want in zip((shape.x1, shape.y1, shape.x2, shape.y2), (x1, y1, x2, y2)):
            assert abs(got - want) <= tol, (shape, (x1, y1, x2, y2))


def assert_points(shapes, expected, tol=1.0):
    assert [type(s) for s in shapes] == [Point] * len(expected), shapes
    for shape, (x, y, label) in zip(shapes, expected):
        assert shape.label == label
        assert abs(shape.x - x) <= tol and abs(shape.y - y) <= tol, (shape, (x, y))


# --- Qwen2.5-VL: absolute pixels of the resized input -------------------------------------------------

# Source: QwenLM/Qwen2.5-VL cookbooks/spatial_understanding.ipynb, "2. Detect a specific object using
# descriptions" (Qwen2.5-VL-7B-Instruct, cakes.png, printed size (1024, 1024)). The notebook maps back with
# input_width = image_grid_thw[2] * 14; the default processor's smart_resize of 1024x1024 is 1036x1036.
CAKES_TOP_RIGHT = '```json\n[\n\t{"bbox_2d": [765, 394, 891, 550], "label": "top right brown cake"}\n]\n```'

# Same notebook, "1. Detect certain object in the image" (all twelve small cakes).
CAKES_ALL = """```json
[
    {"bbox_2d": [139, 768, 315, 954], "label": "small cake"},
    {"bbox_2d": [366, 679, 536, 849], "label": "small cake"},
    {"bbox_2d": [44, 575, 204, 753], "label": "small cake"},
    {"bbox_2d": [310, 567, 459, 729], "label": "small cake"},
    {"bbox_2d": [533, 579, 689, 738], "label": "small cake"},
    {"bbox_2d": [652, 492, 799, 662], "label": "small cake"},
    {"bbox_2d": [829, 526, 995, 716], "label": "small cake"},
    {"bbox_2d": [765, 393, 895, 552], "label": "small cake"},
    {"bbox_2d": [551, 369, 676, 542], "label": "small cake"},
    {"bbox_2d": [411, 381, 519, 520], "label": "small cake"},
    {"bbox_2d": [262, 392, 384, 558], "label": "small cake"},
    {"bbox_2d": [69, 408, 212, 593], "label": "small cake"}
]
```"""


def test_qwen25_input_size_of_the_cookbook_image_is_smart_resize():
    assert smart_resize(1024, 1024) == (1036, 1036)


def test_qwen25_cookbook_box_maps_from_input_to_original_pixels():
    grounding = qwen.parse_qwen25(CAKES_TOP_RIGHT, (1024, 1024), (1036, 1036))
    k = 1024 / 1036
    assert_boxes(grounding.shapes, [(765 * k, 394 * k, 891 * k, 550 * k, "top right brown cake")], tol=1e-6)
    assert grounding.format == "qwen2.5vl" and grounding.image_size == (1024, 1024)


def test_qwen25_cookbook_twelve_cakes_keep_order_and_count():
    grounding = qwen.parse_qwen25(CAKES_ALL, (1024, 1024), (1036, 1036))
    assert len(grounding.shapes) == 12
    assert_boxes(grounding.shapes[:1], [(139 * 1024 / 1036, 768 * 1024 / 1036, 315 * 1024 / 1036,
                                         954 * 1024 / 1036, "small cake")], tol=1e-6)


def test_qwen25_cookbook_without_input_size_takes_original_pixels():
    grounding = qwen.parse_qwen25(CAKES_TOP_RIGHT, (1024, 1024))
    assert_boxes(grounding.shapes, [(765, 394, 891, 550, "top right brown cake")], tol=1e-9)


def test_qwen25_cookbook_plain_text_box():
    # Same notebook, "8. spatial understanding with designed system prompt": plain 'x1,y1,x2,y2 object'.
    grounding = qwen.parse_qwen25("43,378,996,957 cakes", (1024, 1024), (1036, 1036))
    k = 1024 / 1036
    assert_boxes(grounding.shapes, [(43 * k, 378 * k, 996 * k, 957 * k, "cakes")], tol=1e-6)


def test_qwen25_xml_point_from_the_dashscope_docs():
    # Source: Alibaba Cloud Model Studio "物体定位" doc (quoted in Qwen cookbooks' markdown export), output of
    # qwen-vl-max for a 1138x640 image (tps-1138-640 in the URL), spacing exactly as printed there.
    text = '< points x1 = "284"\ny1 = "305"\nalt = "见义勇为的人" > 见义勇为的人 < /points>'
    input_size = smart_resize(1138, 640)
    assert input_size == (1148, 644)
    grounding = qwen.parse_qwen25(text, (1138, 640), input_size)
    assert_points(grounding.shapes, [(284 * 1138 / 1148, 305 * 640 / 644, "见义勇为的人")], tol=1e-6)


# --- Qwen3-VL / json1000: relative 0-1000 --------------------------------------------------------------

# Source: QwenLM/Qwen3-VL issue #2020 (Qwen3-VL-235B output, prompt 'Please output bounding boxes for each instance
# of the following object: ["watch"]'). The image is taken as 1380x245, the size of the attachment in the issue.
WATCHES = """json
[
    {"bbox_2d": [323, 118, 444, 825], "label": "watch"},
    {"bbox_2d": [444, 118, 565, 825], "label": "watch"},
    {"bbox_2d": [565, 118, 686, 825], "label": "watch"},
    {"bbox_2d": [686, 118, 807, 825], "label": "watch"}
]
"""


@pytest.mark.parametrize("parse", [qwen.parse_qwen3, qwen.parse_json1000])
def test_qwen3_issue_output_is_relative_1000(parse):
    grounding = parse(WATCHES, (1380, 245))
    expected = [(x1 * 1.38, 118 * 0.245, x2 * 1.38, 825 * 0.245, "watch")
                for x1, x2 in ((323, 444), (444, 565), (565, 686), (686, 807))]
    assert_boxes(grounding.shapes, expected, tol=1e-6)


def test_qwen3_ignores_input_size():
    assert qwen.parse_qwen3(WATCHES, (1380, 245), (700, 140)).shapes == qwen.parse_qwen3(WATCHES, (1380, 245)).shapes


# --- Qwen2-VL: box tokens, 0-1000 ----------------------------------------------------------------------

# Source: QwenLM/Qwen3-VL issue #1871, a GRIT grounding sample in Qwen2-VL's format; image_width 384, height 256.
GRIT = "The spatial extent of the object is given by <|box_start|>(342,308),(670,766)<|box_end|>."


def test_qwen2_box_tokens_relative_1000():
    grounding = qwen.parse_qwen2(GRIT, (384, 256))
    assert_boxes(grounding.shapes, [(342 * 0.384, 308 * 0.256, 670 * 0.384, 766 * 0.256, "")], tol=1e-6)


def test_qwen2_same_reply_with_special_tokens_stripped():
    stripped = GRIT.replace("<|box_start|>", "").replace("<|box_end|>", "")
    assert qwen.parse_qwen2(stripped, (384, 256)).shapes == qwen.parse_qwen2(GRIT, (384, 256)).shapes


def test_qwen2_object_ref_label_and_stripped_label():
    # Source: ms-swift "Qwen2-VL best practice" grounding sample: query "Find <|object_ref_start|>the man
    # <|object_ref_end|>", response "<|box_start|>(123,235),(324,546)<|box_end|>"; the model echoes the ref.
    full = "<|object_ref_start|>the man<|object_ref_end|><|box_start|>(123,235),(324,546)<|box_end|>"
    stripped = "the man(123,235),(324,546)"
    for text in (full, stripped):
        assert_boxes(qwen.parse_qwen2(text, (1000, 1000)).shapes, [(123, 235, 324, 546, "the man")], tol=1e-9)


# --- Florence-2: 1000 bins, bin centre -----------------------------------------------------------------
# Source: transformers tests/models/florence2/test_modeling_florence2.py (integration tests, real generations of
# florence-community/Florence-2-base/large) with the expected post_process_generation results, which truncate to
# int; car.jpg is 640x480 and australia.jpg 1300x876 (the sizes those expected values imply).

OD_CAR = ("</s><s>car<loc_53><loc_333><loc_933><loc_774>door handle<loc_425><loc_503><loc_474><loc_515>"
          "wheel<loc_709><loc_576><loc_865><loc_772><loc_150><loc_584><loc_309><loc_773></s><pad><pad>")
OVD_WHEELS = ("</s><s>wheels<loc_144><loc_570><loc_870><loc_778>wheels<loc_711><loc_573><loc_866><loc_774>"
              "wheels<loc_148><loc_579><loc_304><loc_774></s><pad><pad><pad>")
PROPOSALS = ("</s><s><loc_0><loc_0><loc_998><loc_711><loc_0><loc_0><loc_419><loc_673><loc_0><loc_64><loc_364>"
             "<loc_672><loc_764><loc_0><loc_998><loc_665><loc_525><loc_545><loc_921><loc_763><loc_163><loc_133>"
             "<loc_365><loc_423><loc_0><loc_65><loc_71><loc_658><loc_955><loc_148><loc_998><loc_661><loc_806>"
             "<loc_675><loc_890><loc_759><loc_567><loc_678><loc_646><loc_761></s>")
SEGMENTATION = (
    "</s><s><loc_279><loc_379><loc_282><loc_379><loc_290><loc_372><loc_293><loc_372><loc_298><loc_368><loc_301>"
    "<loc_368><loc_306><loc_364><loc_310><loc_362><loc_315><loc_360><loc_320><loc_358><loc_324><loc_355><loc_331>"
    "<loc_353><loc_337><loc_351><loc_343><loc_349><loc_349><loc_347><loc_356><loc_345><loc_365><loc_343><loc_376>"
    "<loc_341><loc_390><loc_339><loc_409><loc_337><loc_489><loc_337><loc_514><loc_339><loc_528><loc_341><loc_539>"
    "<loc_343><loc_547><loc_345><loc_553><loc_347><loc_559><loc_349><loc_566><loc_351><loc_572><loc_353><loc_578>"
    "<loc_355><loc_584><loc_360><loc_589><loc_366><loc_592><loc_372><loc_595><loc_379><loc_598><loc_385><loc_601>"
    "<loc_391><loc_603><loc_397><loc_606><loc_401><loc_608><loc_408><loc_611><loc_414><loc_614><loc_420><loc_617>"
    "<loc_426><loc_620><loc_433><loc_626><loc_441><loc_631><loc_445><loc_636><loc_447><loc_639><loc_451><loc_639>"
    "<loc_456><loc_642><loc_460></s>"
)
SEGMENTATION_EXPECTED = [
    178, 182, 180, 182, 185, 178, 187, 178, 191, 176, 192, 176, 196, 174, 198, 174, 201, 173, 205, 172, 207, 170,
    212, 169, 216, 168, 219, 167, 223, 166, 228, 165, 233, 164, 240, 163, 249, 162, 262, 162, 313, 162, 329, 162,
    338, 163, 345, 164, 350, 165, 354, 166, 358, 167, 362, 168, 366, 169, 370, 170, 374, 173, 377, 175, 379, 178,
    381, 182, 383, 185, 384, 187, 386, 190, 388, 192, 389, 196, 391, 198, 393, 201, 395, 204, 397, 208, 400, 211,
    404, 213, 407, 214, 409, 216, 409, 219, 411, 221,
]


def test_florence_od_several_boxes_per_label():
    grounding = florence.parse(OD_CAR, (640, 480))
    assert_boxes(grounding.shapes, [(34, 160, 597, 371, "car"), (272, 241, 303, 247, "door handle"),
                                    (454, 276, 553, 370, "wheel"), (96, 280, 198, 371, "wheel")])
    assert grounding.shapes[0].x1 == pytest.approx(53.5 * 0.64)  # the bin centre, not its edge


def test_florence_open_vocabulary_detection():
    grounding = florence.parse(OVD_WHEELS, (640, 480))
    assert_boxes(grounding.shapes, [(92, 273, 557, 373, "wheels"), (455, 275, 554, 371, "wheels"),
                                    (95, 278, 194, 371, "wheels")])


def test_florence_region_proposals_without_labels():
    grounding = florence.parse(PROPOSALS, (1300, 876))
    expected = [[0, 0, 1298, 623], [0, 0, 545, 589], [0, 56, 473, 589], [993, 0, 1298, 582], [683, 477, 1197, 668],
                [212, 116, 475, 370], [0, 57, 92, 576], [1242, 130, 1298, 579], [1048, 591, 1157, 665],
                [737, 594, 840, 667]]
    assert_boxes(grounding.shapes, [(*box, "") for box in expected])


def test_florence_referring_segmentation_is_one_polygon():
    grounding = florence.parse(SEGMENTATION, (640, 480))
    assert [type(s) for s in grounding.shapes] == [Polygon]
    flat = [v for point in grounding.shapes[0].points for v in point]
    assert len(flat) == len(SEGMENTATION_EXPECTED)
    assert all(abs(a - b) <= 1.0 for a, b in zip(flat, SEGMENTATION_EXPECTED))


def test_florence_ocr_quad_is_a_polygon():
    # Source: transformers tests/models/florence2/test_processing_florence2.py, test_post_process_generation.
    grounding = florence.parse("Hello<loc_100><loc_100><loc_200><loc_100><loc_200><loc_200><loc_100><loc_200>",
                               (1000, 1000))
    assert grounding.shapes == [Polygon(((100.5, 100.5), (200.5, 100.5), (200.5, 200.5), (100.5, 200.5)), "Hello")]


def test_florence_phrase_grounding_bin_1000_is_clamped():
    # Source: same processing test, test_post_process_parse_phrase_grounding_from_text_and_spans.
    text = "</s><s>red car<loc_53><loc_334><loc_933><loc_775><loc_711><loc_203><loc_906><loc_546>sky<loc_0><loc_0>" \
           "<loc_1000><loc_300></s>"
    grounding = florence.parse(text, (1000, 1000))
    assert_boxes(grounding.shapes, [(53.5, 334.5, 933.5, 775.5, "red car"), (711.5, 203.5, 906.5, 546.5, "red car"),
                                    (0.5, 0.5, 1000, 300.5, "sky")], tol=1e-9)


# --- PaliGemma: y first, 1024 bins, <seg> codes kept ---------------------------------------------------

# Source: big-vision/paligemma HF Space, paligemma_parse.py: EXAMPLE_STRING and the reference decoder
# extract_objs (reimplemented below, coordinates only), run there on a 100x200 image.
PALIGEMMA_EXAMPLE = (
    "<loc0000><loc0000><loc0930><loc1012> <seg114><seg074><seg106><seg044><seg030><seg027><seg119><seg119><seg120>"
    "<seg117><seg082><seg082><seg051><seg005><seg125><seg097> wall ; <loc0722><loc0047><loc0895><loc0378> <seg068>"
    "<seg114><seg014><seg037><seg029><seg063><seg048><seg104><seg010><seg056><seg021><seg056><seg019><seg017><seg102>"
    "<seg121> car ; <loc0180><loc0596><loc0782><loc0961> <seg026><seg028><seg028><seg026><seg104><seg026><seg029>"
    "<seg022><seg000><seg068><seg092><seg125><seg003><seg127><seg121><seg043> david bowie ; <loc0234><loc0043>"
    "<loc0736><loc0289> <seg068><seg008><seg091><seg064><seg007><seg055><seg017><seg090><seg042><seg052><seg068>"
    "<seg086><seg001><seg014><seg093><seg052> david bowie ; <loc0230><loc0300><loc0736><loc0499> <seg073><seg011>"
    "<seg114><seg059><seg048><seg097><seg091><seg022><seg007><seg036><seg091><seg022><seg016><seg009><seg003>"
    "<seg036> david bowie"
)
_BIG_VISION_RE = re.compile(
    r"(.*?)" + r"<loc(\d{4})>" * 4 + r"\s*" + "(?:%s)?" % (r"<seg(\d{3})>" * 16) + r"\s*([^;<>]+)? ?(?:; )?"
)


def big_vision_extract_objs(text, width, height):
    """Google's extract_objs, boxes only: [(x1, y1, x2, y2, name)] rounded to whole pixels."""
    objs = []
    while text:
        m = _BIG_VISION_RE.match(text)
        if not m:
            break
        gs = list(m.groups())
        before = gs.pop(0)
        name = gs.pop()
        y1, x1, y2, x2 = [int(x) / 1024 for x in gs[:4]]
        y1, x1, y2, x2 = map(round, (y1 * height, x1 * width, y2 * height, x2 * width))
        objs.append((x1, y1, x2, y2, name.strip()))
        text = text[len(m.group()):]
    return objs


def test_paligemma_example_matches_google_reference_decoder():
    grounding = paligemma.parse(PALIGEMMA_EXAMPLE, (100, 200))
    assert_boxes(grounding.shapes, big_vision_extract_objs(PALIGEMMA_EXAMPLE, 100, 200), tol=0.5)
    assert grounding.shapes[1] == Box(47 / 1024 * 100, 722 / 1024 * 200, 378 / 1024 * 100, 895 / 1024 * 200, "car")


def test_paligemma_segment_codes_are_kept_as_raw_data():
    segments = paligemma.parse(PALIGEMMA_EXAMPLE, (100, 200)).raw["segments"]
    assert [s["label"] for s in segments] == ["wall", "car", "david bowie", "david bowie", "david bowie"]
    assert segments[1] == {"shape": 1, "label": "car",
                           "codes": [68, 114, 14, 37, 29, 63, 48, 104, 10, 56, 21, 56, 19, 17, 102, 121]}


def test_paligemma_detection_without_segments():
    # Format from the PaliGemma docs ("detect {object} ; {object}"): four locs then the label, " ; " between.
    grounding = paligemma.parse("<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> "
                                "sofa", (1024, 512))
    # image 1024 wide, 512 high: y = N / 1024 * 512, x = N / 1024 * 1024
    assert_boxes(grounding.shapes, [(128, 128, 512, 384, "cat"), (0, 0, 1023, 511.5, "sofa")], tol=1e-9)
    assert "segments" not in grounding.raw


# --- Kosmos-2: 32x32 patch grid ------------------------------------------------------------------------

# Source: microsoft/kosmos-2-patch14-224 model card and transformers' Kosmos2Processor docstring, whose
# documented entities are [('a snowman', ..., [(0.390625, 0.046875, 0.984375, 0.828125)]),
# ('a fire', ..., [(0.171875, 0.015625, 0.484375, 0.890625)])].
SNOWMAN = ("<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> "
           "warming himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911></object>.")


def test_kosmos2_model_card_snowman():
    grounding = kosmos.parse(SNOWMAN, (640, 480))
    assert_boxes(grounding.shapes, [(0.390625 * 640, 0.046875 * 480, 0.984375 * 640, 0.828125 * 480, "a snowman"),
                                    (0.171875 * 640, 0.015625 * 480, 0.484375 * 640, 0.890625 * 480, "a fire")],
                 tol=1e-9)


# --- InternVL: <ref>/<box>, 0-1000 ---------------------------------------------------------------------

# Source: InternVL docs, "Chat Data Format" > "Grounding Detection Data" (COCO_train2014_000000581857.jpg,
# width 427, height 640). The RefCOCO box of "the lady with the blue shirt" (ann 1719310) is
# [103.93, 299.99, 134.22, 177.42] (x, y, w, h): the parse must land on it within a pixel.
INTERNVL_DOC = "<ref>the lady with the blue shirt</ref><box>[[243, 469, 558, 746]]</box>"


def test_internvl_docs_example_lands_on_the_coco_box():
    grounding = internvl.parse(INTERNVL_DOC, (427, 640))
    assert_boxes(grounding.shapes, [(103.93, 299.99, 103.93 + 134.22, 299.99 + 177.42,
                                     "the lady with the blue shirt")], tol=1.0)


def test_internvl_second_turn_of_the_docs_example():
    text = "<ref>woman in gray shirt facing camera on right</ref><box>[[507, 409, 698, 740]]</box>"
    assert_boxes(internvl.parse(text, (427, 640)).shapes,
                 [(507 * 0.427, 409 * 0.64, 698 * 0.427, 740 * 0.64, "woman in gray shirt facing camera on right")],
                 tol=1e-9)


def test_internvl_official_evaluation_rule_for_0_1_boxes():
    # InternVL's evaluate_grounding.py: a box whose numbers sum to less than 4 is already 0-1.
    grounding = internvl.parse("<ref>cat</ref><box>[[0.25, 0.5, 0.75, 1.0]]</box>", (400, 300))
    assert_boxes(grounding.shapes, [(100, 150, 300, 300, "cat")], tol=1e-9)


# --- CogVLM / CogAgent: [[x1,y1,x2,y2]] 0-1000, zero padded --------------------------------------------

def test_cogagent_readme_grounded_operation():
    # Source: THUDM/CogVLM README, CogAgent "(with grounding)" example output. Image size chosen: 1920x1080.
    text = ("Plan: 1. Type 'CogVLM' into the Google search bar. 2. Review the search results that appear.\n"
            "Next Action: Move the cursor to the Google search bar, and type 'CogVLM' into it.\n"
            "Grounded Operation:[combobox] Search -> TYPE: CogVLM at the box [[212,498,787,564]]")
    grounding = cogvlm.parse(text, (1920, 1080))
    assert_boxes(grounding.shapes, [(212 * 1.92, 498 * 1.08, 787 * 1.92, 564 * 1.08, "CogVLM")], tol=1e-9)


def test_cogvlm_zero_padded_boxes_points_and_multi_box():
    # Zero padding as in the README's box2caption example [[086,540,400,760]]; ';' joins boxes of one phrase.
    text = "Two dogs [[086,540,400,760];[500,500,600,700]] and a ball [[050,060]]."
    grounding = cogvlm.parse(text, (1000, 1000))
    assert_boxes(grounding.shapes[:2], [(86, 540, 400, 760, "Two dogs"), (500, 500, 600, 700, "Two dogs")], tol=1e-9)
    assert_points(grounding.shapes[2:], [(50, 60, "and a ball")], tol=1e-9)


# --- Molmo / Molmo2 ------------------------------------------------------------------------------------

# Source: Ai2 playground storybook PointResponseMessage.stories.tsx (Molmo 1 and Molmo2 reply strings).
MOLMO1_POINTS = ('Counting the <points x1="9.1" y1="11.7" x2="17.2" y2="41.3" x3="19.6" y3="3.4" x4="26.8" y4="54.4" '
                 'x5="30.8" y5="1.6" alt="the boats">the boats</points> shows a total of 5.')
MOLMO1_POINT = '<point x="63.3" y="85.8" alt="Small fishing boat">Small fishing boats</point> are visible'
MOLMO2_POINTS = ('Counting the <points coords="1 1 073 160 2 173 600 3 258 725 4 323 735 5 353 160" alt="boats">'
                 'the boats</points> shows a total of 5.')
MOLMO2_MULTI = ('Counting the <points coords="1 1 073 160 2 173 600 3 258 725 4 323 735 5 353 160\t2 6 373 460 '
                '7 433 155 8 443 455 9 503 695 10 513 445" alt="boats">the boats</points> shows a total of 10.')


def molmo_extract_points(molmo_output, image_w, image_h):
    """The maintainers' extract_points (https://huggingface.co/allenai/Molmo-7B-O-0924/discussions/1)."""
    all_points = []
    for match in re.finditer(r'x\d*="\s*([0-9]+(?:\.[0-9]+)?)"\s+y\d*="\s*([0-9]+(?:\.[0-9]+)?)"', molmo_output):
        point = [float(match.group(i)) for i in range(1, 3)]
        if max(point) > 100:
            continue
        all_points.append((point[0] / 100 * image_w, point[1] / 100 * image_h))
    return all_points


def molmo2_extract_points(text, image_w, image_h):
    """Molmo2 model card's extract_multi_image_points (single size), as (frame, x, y) with float x/y."""
    coord_re = re.compile(r"<(?:points|tracks).*? coords=\"([0-9\t:;, .]+)\"/?>")
    frame_re = re.compile(r"(?:^|\t|:|,|;)([0-9\.]+) ([0-9\. ]+)")
    points_re = re.compile(r"([0-9]+) ([0-9]{3,4}) ([0-9]{3,4})")
    out = []
    for coord in coord_re.finditer(text):
        for group in frame_re.finditer(coord.group(1)):
            for point in points_re.finditer(group.group(2)):
                out.append((float(group.group(1)), float(point.group(2)) / 1000 * image_w,
                            float(point.group(3)) / 1000 * image_h))
    return out


def test_molmo1_points_match_the_maintainers_extractor():
    grounding = molmo.parse(MOLMO1_POINTS, (800, 600))
    expected = molmo_extract_points(MOLMO1_POINTS, 800, 600)
    assert_points(grounding.shapes, [(x, y, "the boats") for x, y in expected], tol=1e-9)
    single = molmo.parse(MOLMO1_POINT, (800, 600))
    assert_points(single.shapes, [(0.633 * 800, 0.858 * 600, "Small fishing boat")], tol=1e-9)


def test_molmo2_points_match_the_model_card_extractor():
    # The model card's COORD_REGEX needs coords to be the tag's last attribute; the parser accepts any order.
    coords_last = MOLMO2_POINTS.replace(' alt="boats">', ">").replace("<points ", '<points alt="boats" ')
    expected = molmo2_extract_points(coords_last, 1000, 700)
    assert len(expected) == 5
    for text in (coords_last, MOLMO2_POINTS):
        grounding = molmo.parse(text, (1000, 700))
        assert_points(grounding.shapes, [(x, y, "boats") for _, x, y in expected], tol=1e-9)


def test_molmo2_multi_image_reply_keeps_the_first_image():
    grounding = molmo.parse(MOLMO2_MULTI, (1000, 700))
    assert_points(grounding.shapes, [(73, 112, "boats"), (173, 420, "boats"), (258, 507.5, "boats"),
                                     (323, 514.5, "boats"), (353, 112, "boats")], tol=1e-9)
    assert grounding.raw["other_image_points"] == 5


def test_molmo2_technical_report_example():
    # Source: Molmo2 technical report, appendix A "Pointing": points on images 1, 2 and 5.
    text = '<points coords="1 1 555 169;2 3 649 154 4 709 162;5 5 758 175 6 808 183 7 852 187"> Inline text </points>'
    grounding = molmo.parse(text, (2000, 1000))
    assert_points(grounding.shapes, [(1110, 169, "Inline text")], tol=1e-9)
    assert grounding.raw["other_image_points"] == 5


# --- Gemini: box_2d [ymin, xmin, ymax, xmax] 0-1000 -----------------------------------------------------

def gemini_cookbook_boxes(items, width, height):
    """The arithmetic of plot_bounding_boxes in google-gemini/cookbook quickstarts/Spatial_understanding.ipynb."""
    out = []
    for box in items:
        abs_y1 = int(box["box_2d"][0] / 1000 * height)
        abs_x1 = int(box["box_2d"][1] / 1000 * width)
        abs_y2 = int(box["box_2d"][2] / 1000 * height)
        abs_x2 = int(box["box_2d"][3] / 1000 * width)
        out.append((abs_x1, abs_y1, abs_x2, abs_y2, box["label"]))
    return out


def test_gemini_boxes_match_the_cookbook_arithmetic():
    # Reply in the shape the Gemini docs ask for ("[ymin, xmin, ymax, xmax] normalized to 0-1000", a JSON list in a
    # ```json fence); the values are illustrative, the expected pixels come from the cookbook's own drawing code.
    items = [{"box_2d": [248, 103, 511, 323], "label": "left sock"}, {"box_2d": [362, 548, 741, 860],
                                                                      "label": "right sock"}]
    text = '```json\n[\n  {"box_2d": [248, 103, 511, 323], "label": "left sock"},\n' \
           '  {"box_2d": [362, 548, 741, 860], "label": "right sock"}\n]\n```'
    grounding = gemini.parse(text, (1024, 768))
    assert_boxes(grounding.shapes, gemini_cookbook_boxes(items, 1024, 768), tol=1.0)
    assert grounding.shapes[0].x1 == pytest.approx(103 * 1.024)  # x comes from the SECOND number


def test_gemini_points_are_y_first():
    # Spatial_understanding_3d cookbook: 'The point is in [y, x] order'.
    grounding = gemini.parse('[{"point": [130, 760], "label": "handle"}]', (1000, 500))
    assert_points(grounding.shapes, [(760, 65, "handle")], tol=1e-9)


# --- UI-TARS ---------------------------------------------------------------------------------------------

def test_uitars15_readme_coordinates_example():
    # Source: bytedance/UI-TARS README_coordinates.md: model output "Action: click(start_box='(197,525)')" mapped
    # with smart_resize(height, width) (factor 28, min 100*28*28, max 16384*28*28); image size chosen 1920x1080.
    text = "Thought: xxx\nAction: click(start_box='(197,525)')"
    new_width, new_height = smart_resize(1920, 1080, 28, 100 * 28 * 28, 16384 * 28 * 28)
    assert (new_width, new_height) == (1932, 1092)
    readme_point = (int(197 / new_width * 1920), int(525 / new_height * 1080))  # the README's own arithmetic
    grounding = uitars.parse(text, (1920, 1080))
    assert_points(grounding.shapes, [(*readme_point, "click")], tol=1.0)
    assert uitars.parse(text, (1920, 1080), (1932, 1092)).shapes == grounding.shapes


def test_uitars1_doubao_point_is_relative_1000():
    # Source: the ui-tars package's parse_action_to_structure_output usage with factor=1000 for
    # "click(point='<point>200 300</point>')" on a 1920x1080 screenshot.
    grounding = uitars.parse_v1("Thought: Click the button\nAction: click(point='<point>200 300</point>')",
                                (1920, 1080))
    assert_points(grounding.shapes, [(384, 324, "click")], tol=1e-9)


def test_uitars_drag_has_start_and_end():
    text = "Action: drag(start_box='(100,200)', end_box='(300,400)')"
    grounding = uitars.parse_v1(text, (1000, 1000))
    assert_points(grounding.shapes, [(100, 200, "drag"), (300, 400, "drag end")], tol=1e-9)


def test_every_published_case_parsed_without_a_swallowed_error():
    """The never-raises net must not have hidden a bug in any of the cases above."""
    cases = [
        (qwen.parse_qwen25, CAKES_ALL), (qwen.parse_qwen3, WATCHES), (qwen.parse_qwen2, GRIT),
        (florence.parse, OD_CAR), (florence.parse, SEGMENTATION), (paligemma.parse, PALIGEMMA_EXAMPLE),
        (kosmos.parse, SNOWMAN), (internvl.parse, INTERNVL_DOC), (molmo.parse, MOLMO2_MULTI),
    ]
    for parse, text in cases:
        grounding = parse(text, (640, 480))
        assert "error" not in grounding.raw and grounding.shapes
        assert all(math.isfinite(v) for s in grounding.shapes for v in _coords(s))


def _coords(shape):
    if isinstance(shape, Box):
        return (shape.x1, shape.y1, shape.x2, shape.y2)
    if isinstance(shape, Point):
        return (shape.x, shape.y)
    return tuple(v for p in shape.points for v in p)
