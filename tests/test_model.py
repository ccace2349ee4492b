import sys
def test_x():
    import rvae
    print(rvae.__file__, sys.path[:3])
    from rvae import Grid
