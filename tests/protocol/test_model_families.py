"""Model families are plug-ins: `initialize` advertises exactly the registered families' kinds, and
`models/load` refuses any other kind naming every one of them."""

from conftest import ROOT, Daemon, run
from test_reliability_errors import refused

RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"


def test_model_kinds_are_the_registered_families_and_an_unknown_kind_names_them():
    async def body():
        d = await Daemon().start()
        kinds = d.init_result.capabilities.experimental.modelKinds
        assert list(kinds) == ["clip", "gguf", "mmproj"]
        err = await refused(d, "models/load", {"kind": "siglip", "path": str(RN)})
        assert err.code == -32602 and err.message.startswith("params.kind:"), err.message
        assert all(f'"{kind}"' in err.message for kind in kinds) and '"siglip"' in err.message, err.message
        # Every advertised kind loads through models/load (the kind is accepted, whatever the file holds).
        for kind in kinds:
            err = await refused(d, "models/load", {"kind": kind, "path": str(ROOT / "README.md")})
            assert err.code == -32003 and "README.md" in err.message, (kind, err.message)
        assert await d.stop() == 0
    run(body())
