from lorevit.data import clean_classname


def test_clean_classname():
    assert clean_classname("aquarium_fish") == "aquarium fish"
    assert clean_classname("n02085782-Japanese_spaniel") == "Japanese spaniel"
    assert clean_classname("  Apply_Eye__Makeup ") == "Apply Eye Makeup"
    assert clean_classname("T-shirt/top") == "T-shirt/top"
    assert clean_classname("F/A-18") == "F/A-18"
