"""`landscape plot`: images (and optionally a ParaView .vtp) of surface HDF5 files."""
from __future__ import annotations

HELP = "plot surface files: 1D curves, 2D contours/heat map/3D surface, 3D slices, VTP export"
# = landscape.plot.KINDS_2D, repeated so that building the parser does not import matplotlib
KINDS_2D = ("contour", "filled", "heatmap", "surface3d")


def add_arguments(p) -> None:
    """Add the flags of ``landscape plot`` to the argparse parser ``p``."""
    from .common import finite_float, positive_float

    p.add_argument("files", nargs="+", metavar="SURF_FILE",
                   help="surface .h5 file(s); several 1D or 2D files also get comparison figures")
    p.add_argument("--key", default="train_loss",
                   help="value to plot: train_loss, train_acc, test_loss, test_acc (default train_loss)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS_2D), choices=KINDS_2D, metavar="KIND",
                   help=f"2D plot kinds among {', '.join(KINDS_2D)} (default: all)")
    p.add_argument("--vmin", type=finite_float, default=None,
                   help="lowest contour level / colour (default: data min)")
    p.add_argument("--vmax", type=finite_float, default=None,
                   help="highest contour level / colour (default: data max)")
    p.add_argument("--vlevel", type=positive_float, default=None,
                   help="spacing of contour levels (in decades with --log; default: about 15 levels)")
    p.add_argument("--log", action="store_true", help="log scale for the values")
    p.add_argument("--pdf", action="store_true", help="write PDF as well as PNG")
    p.add_argument("--vtp", action="store_true", help="also export 2D surfaces as ParaView .vtp")
    p.add_argument("--zmax", type=finite_float, default=None, help="clip values above this in the .vtp")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: beside each file)")


def run(args) -> int:
    """Run ``landscape plot`` with the parsed flags ``args``; returns the exit status (0: done)."""
    import sys

    if args.vmin is not None and args.vmax is not None and not args.vmin < args.vmax:
        raise ValueError(f"--vmin {args.vmin:g} must be below --vmax {args.vmax:g}")

    from landscape.plot import compare_surface_files, gaps_note, plot_surface_file, read_surface

    formats = ("png", "pdf") if args.pdf else ("png",)
    scale = dict(vmin=args.vmin, vmax=args.vmax, vlevel=args.vlevel, log=args.log)
    surfaces = [read_surface(f) for f in args.files]
    for path, surface in zip(args.files, surfaces):
        note = gaps_note(surface)
        if note:
            print(f"landscape plot: warning: {note}", file=sys.stderr, flush=True)
        _report(plot_surface_file(path, args.key, args.kinds, args.out, formats, vtp=args.vtp,
                                  zmax=args.zmax, **scale))
    flat_kinds = [k for k in args.kinds if k != "surface3d"]
    dims = {len(s.shape) for s in surfaces}
    if len(args.files) > 1 and (dims == {1} or (dims == {2} and flat_kinds)):
        _report(compare_surface_files(args.files, args.key, flat_kinds, args.out, formats, **scale))
    return 0


def _report(paths) -> None:
    for path in paths:
        print(path, flush=True)
