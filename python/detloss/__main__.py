"""python3 -m detloss [--version]: the package and library versions."""
import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m detloss",
                                 description="detloss Python binding (ctypes over libdetloss.so)")
    ap.add_argument("--version", action="store_true", help="print the versions and exit")
    ap.parse_args(argv)
    try:
        import detloss
    except ImportError as e:
        print(e, file=sys.stderr)
        return 1
    print("detloss %s (library %s, %s, OpenMP %s)" % (
        detloss.__version__, detloss.library_version(), detloss.library_path,
        "on" if detloss.has_openmp() else "off"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
