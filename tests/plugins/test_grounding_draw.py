"""Drawing grounding on real images and cropping shapes for /zoom."""

from __future__ import annotations

from PIL import Image

from assistant.geometry import Box, Grounding, Point, Polygon
from assistant_plugins.grounding.draw import PALETTE, colour_for, crop_shape, draw_grounding

GREY = (128, 128, 128)


def grey(size=(400, 300)):
    return Image.new("RGB", size, GREY)


def pixels(image):
    return list(image.get_flattened_data() if hasattr(image, "get_flattened_data") else image.getdata())


def count_colour(image, colour, box=None):
    return sum(1 for pixel in pixels(image.crop(box) if box else image) if pixel == colour)


def test_boxes_are_outlined_in_distinct_colours_on_a_copy():
    image = grey()
    grounding = Grounding("qwen3vl", [Box(50, 60, 150, 160, "cat"), Box(200, 100, 350, 250, "dog")], (400, 300))
    drawn = draw_grounding(image, grounding)
    assert drawn is not image and drawn.size == image.size
    assert count_colour(image, PALETTE[0]) == 0  # the original is untouched
    first, second = colour_for(0), colour_for(1)
    assert first != second
    assert drawn.getpixel((50, 110)) == first   # left edge of box 1
    assert drawn.getpixel((350, 200)) == second  # right edge of box 2
    assert drawn.getpixel((100, 110)) == GREY    # inside box 1 stays clear


def test_labels_sit_on_a_coloured_tag_above_the_box():
    drawn = draw_grounding(grey(), Grounding("x", [Box(50, 100, 150, 200, "cat")], (400, 300)))
    tag = (50, 60, 150, 99)  # above the box
    assert count_colour(drawn, colour_for(0), tag) > 100
    text = [p for p in pixels(drawn.crop(tag)) if p not in (colour_for(0), GREY)]
    assert len(text) > 20  # the label's glyphs, in a colour that contrasts with the tag


def test_numbers_without_labels_and_tags_stay_inside_the_image():
    grounding = Grounding("x", [Box(0, 0, 40, 40), Box(380, 280, 400, 300)], (400, 300))
    drawn = draw_grounding(grey(), grounding)
    assert count_colour(drawn, colour_for(0), (0, 0, 60, 60)) > 50
    assert count_colour(drawn, colour_for(1), (330, 240, 400, 300)) > 50


def test_points_and_polygons_are_drawn():
    grounding = Grounding("x", [Point(100, 150, "button"),
                                Polygon(((250, 50), (350, 60), (340, 200), (240, 190)), "text")], (400, 300))
    drawn = draw_grounding(grey(), grounding)
    assert drawn.getpixel((100, 150)) == colour_for(0)
    assert count_colour(drawn, colour_for(1), (230, 40, 360, 210)) > 100
    assert drawn.getpixel((295, 125)) == GREY  # polygons are outlined, not filled


def test_shapes_are_scaled_to_a_thumbnail():
    grounding = Grounding("x", [Box(100, 100, 300, 200, "cat")], (800, 600))
    drawn = draw_grounding(grey((400, 300)), grounding)
    assert drawn.getpixel((50, 75)) == colour_for(0)   # (100, 150) at half size
    assert drawn.getpixel((100, 75)) == GREY


def test_line_width_grows_with_the_image():
    def edge_thickness(size):
        w, h = size
        drawn = draw_grounding(grey(size), Grounding("x", [Box(w / 4, h / 4, w * 3 / 4, h * 3 / 4)], size))
        row = int(h / 2)
        return sum(1 for x in range(int(w / 4) - 20, int(w / 4) + 20) if drawn.getpixel((x, row)) == colour_for(0))

    assert edge_thickness((3840, 2160)) > edge_thickness((400, 300)) >= 2


def test_non_rgb_images_are_converted():
    drawn = draw_grounding(Image.new("L", (100, 100), 50), Grounding("x", [Box(10, 10, 50, 50)], (100, 100)))
    assert drawn.mode == "RGB"
    assert drawn.getpixel((10, 30)) == colour_for(0)


def test_crop_box_with_margin():
    image = grey((1000, 800))
    crop = crop_shape(image, Box(400, 300, 600, 500), margin=0.1)
    assert crop.size == (240, 240)


def test_crop_is_clipped_at_the_image_edge_and_never_empty():
    image = grey((1000, 800))
    assert crop_shape(image, Box(950, 750, 1000, 800)).size == (58, 58)
    assert crop_shape(image, Box(0, 0, 0.1, 0.1)).size[0] >= 1
    assert crop_shape(image, Point(1000, 800)).size == (100, 100)


def test_crop_point_is_a_square_around_it():
    image = grey((1000, 800))
    crop = crop_shape(image, Point(500, 400), margin=0.1)
    assert crop.size == (200, 200)


def test_crop_contains_the_shape_pixels():
    image = grey((600, 400))
    image.paste((255, 0, 0), (200, 100, 300, 200))
    crop = crop_shape(image, Box(200, 100, 300, 200, "red"))
    w, h = crop.size
    assert crop.getpixel((w // 2, h // 2)) == (255, 0, 0)
    assert crop.getpixel((0, 0)) == GREY


def test_crop_polygon_uses_its_bounds():
    crop = crop_shape(grey((600, 400)), Polygon(((100, 100), (200, 120), (150, 200)), "tri"), margin=0.0)
    assert crop.size == (116, 116)  # bounds 100x100 grown by the 8 px minimum margin on each side
