"""Each dataset kind's name, licence terms and citation, carried into every store made from it.

A store derived from a licensed dataset is still under the owners' release agreement: the
faces and modality stores record these in their root attributes and an export's
MANIFEST.json, and ``mesti cache info`` prints them, so a lab receiving a cache sees what
it may do with it. The citations are those in each recipe's docstring.
"""

from __future__ import annotations

_ACADEMIC = ("academic research use only, under the owners' release agreement, which each "
             "receiving lab must have signed itself; not redistributable, and neither are "
             "stores derived from it")

LICENCES: dict[str, dict[str, str]] = {
    "casme2": {
        "name": "CASME II (Chinese Academy of Sciences Micro-Expression database II)",
        "terms": _ACADEMIC,
        "citation": "Yan, Li, Wang, Zhao, Liu, Chen, Fu. CASME II: An Improved Spontaneous "
                    "Micro-Expression Database and the Baseline Evaluation. PLoS ONE 9(1): "
                    "e86041, 2014.",
    },
    "samm": {
        "name": "SAMM (Spontaneous Actions and Micro-Movements)",
        "terms": _ACADEMIC,
        "citation": "Davison, Lansley, Costen, Tan, Yap. SAMM: A Spontaneous Micro-Facial "
                    "Movement Dataset. IEEE Transactions on Affective Computing 9(1): "
                    "116-129, 2018.",
    },
    "smic": {
        "name": "SMIC-HS (Spontaneous Micro-expression Corpus, high-speed part)",
        "terms": _ACADEMIC,
        "citation": "Li, Pfister, Huang, Zhao, Pietikainen. A Spontaneous Micro-expression "
                    "Database: Inducement, Collection and Baseline. IEEE FG 2013.",
    },
    "casme3": {
        "name": "CAS(ME)^3 part A",
        "terms": _ACADEMIC,
        "citation": "Li, Dong, Lu, Wang, Zhao, Xu, Fu. CAS(ME)^3: A Third Generation Facial "
                    "Spontaneous Micro-Expression Database with Depth Information and High "
                    "Ecological Validity. IEEE TPAMI 45(3): 2782-2800, 2023.",
    },
    "videos": {
        "name": "a lab's own video recordings",
        "terms": "set by the lab that recorded them (participants' consent and the lab's "
                 "data agreement); ask it before sharing",
        "citation": "",
    },
}

SYNTHETIC = {
    "name": "mesti synthetic sample (CASME II layout)",
    "terms": "synthetic, free to use and share: generated from NASA's public-domain "
             "'astronaut' photo (shipped in scikit-image); no person was recorded",
    "citation": "",
}


def licence(dataset: str, synthetic: bool = False) -> dict[str, str]:
    """The name, terms and citation of a dataset kind (``synthetic``: the generated sample).

    An unknown kind gets terms saying they are unknown, never silence.
    """
    if synthetic:
        return dict(SYNTHETIC)
    return dict(LICENCES.get(dataset, {
        "name": dataset or "unknown",
        "terms": "unknown: ask whoever made this store before using or sharing it",
        "citation": "",
    }))
