"""What the benchmark pictures share: Persona's points against the peers' (one marker and
colour for each side), the legend that says which is which, and how a picture is saved."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (the scripts take plt from here)

PERSONA = {"marker": "o", "color": "tab:blue"}
PEER = {"marker": "s", "color": "tab:orange"}


def side(persona):
    """The marker and colour of a point of Persona's, or of a peer's."""
    return PERSONA if persona else PEER


def finish(fig, title, path, peers=None):
    """The legend of the two sides (when `peers` names them), the title, and the PNG."""
    if peers:
        fig.legend(handles=[plt.Line2D([], [], linestyle="", label="Persona", **PERSONA),
                            plt.Line2D([], [], linestyle="", label=peers, **PEER)],
                   loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
