"""Options of the built-in extractors: declared when registering, checked uniformly.

Every built-in extractor registers its options (name -> one-line help) and refuses an
unknown one with the same one-line message from :func:`texsynth.validation.check_options`,
naming the extractor and listing exactly the options it registered.
"""

from __future__ import annotations

import pytest

import texsynth
import texsynth_audio  # noqa: F401  (built in: a missing plugin must fail, not skip)
import texsynth_image  # noqa: F401
from texsynth.errors import UsageError

#: extractor -> (domain, options it accepts)
BUILT_IN: dict[str, tuple[str, tuple[str, ...]]] = {
    "random-multiscale": ("image", ("sizes", "filters", "padding", "method", "direct_max")),
    "vgg19": ("image", ("pooling", "padding")),
    "vgg19-random": ("image", ("pooling", "padding")),
    "ulyanov": ("audio", ("filters", "width", "padding")),
    "multikernel": ("audio", ("widths", "filters", "padding", "max_dense_width")),
}


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_registered_extractors_expose_their_options(name):
    domain, accepted = BUILT_IN[name]
    info = texsynth.get_plugin_manager().extractors()[name]
    assert domain in info.domains
    assert tuple(info.options) == accepted
    for option, help_text in info.options.items():
        assert help_text.strip(), f"{name}: option {option} has no help text"
        assert "\n" not in help_text, f"{name}: help of {option} is not one line"
        assert "default" in help_text, f"{name}: help of {option} does not give the default"


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_unknown_option_gives_the_uniform_one_line_message(name):
    domain, accepted = BUILT_IN[name]
    # checked before any weights are looked for, so vgg19 needs no download here
    with pytest.raises(UsageError) as info:
        texsynth.get_extractor(name, domain, options={"colour": "red", "zoom": 2})
    message = str(info.value)
    assert message == (f"unknown option(s) colour, zoom for extractor {name!r}; "
                       f"known: {', '.join(accepted)}")
    assert "\n" not in message


@pytest.mark.parametrize(("name", "option", "value", "choices"), [
    ("random-multiscale", "padding", "zeros", "circular, valid"),
    ("random-multiscale", "method", "winograd", "auto, fft, direct"),
    ("vgg19-random", "padding", "mirror", "zeros, circular, reflect, replicate"),
    ("vgg19-random", "pooling", "min", "avg, max"),
    ("ulyanov", "padding", "mirror", "zeros, reflect, circular, valid"),
    ("multikernel", "padding", "mirror", "zeros, reflect, circular, valid"),
])
def test_bad_choice_gives_the_uniform_one_line_message(name, option, value, choices):
    domain, _ = BUILT_IN[name]
    with pytest.raises(UsageError) as info:
        texsynth.get_extractor(name, domain, options={option: value})
    assert str(info.value) == (f"extractor {name!r}: {option} must be one of {choices}, "
                               f"got {value!r}")


@pytest.mark.parametrize(("name", "option", "spelled"), [
    ("vgg19-random", "padding", "Replicate"),  # VGG's own padding modes
    ("vgg19-random", "pooling", "MAX"),
    ("random-multiscale", "padding", "valid"),  # random-multiscale's own
    ("ulyanov", "padding", "zero"),  # the audio extractors' alias of "zeros"
])
def test_each_extractor_owns_its_choices(name, option, spelled):
    domain, _ = BUILT_IN[name]
    options = {option: spelled}
    if name == "random-multiscale":
        options["sizes"] = "3:5"
    if name == "ulyanov":
        options["filters"] = 4
    net = texsynth.get_extractor(name, domain, options=options)
    expected = "zeros" if spelled == "zero" else spelled.lower()
    assert getattr(net, option) == expected
