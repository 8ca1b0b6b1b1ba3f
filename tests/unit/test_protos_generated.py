"""The committed generated modules match the .proto files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from grpc_tools import protoc

from protos import PROTO_FILES, decision_service_pb2

REPO = Path(__file__).resolve().parents[2]
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


@pytest.mark.parametrize("proto", PROTO_FILES)
def test_generated_code_matches_proto(proto: str, tmp_path: Path) -> None:
    copy = tmp_path / proto
    copy.parent.mkdir(parents=True)
    shutil.copy(REPO / proto, copy)

    # The same arguments as scripts/gen_protos.sh, with the output in tmp_path.
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={tmp_path}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(copy),
        ]
    )
    assert status == 0

    stem = proto.removesuffix(".proto")
    for suffix in GENERATED_SUFFIXES:
        expected = (tmp_path / f"{stem}{suffix}").read_text()
        committed = (REPO / f"{stem}{suffix}").read_text()
        assert committed == expected, f"{stem}{suffix} is stale: run bash scripts/gen_protos.sh"


def test_gen_script_lists_every_proto() -> None:
    script = (REPO / "scripts" / "gen_protos.sh").read_text()
    for proto in PROTO_FILES:
        assert proto in script
    on_disk = sorted(str(p.relative_to(REPO)) for p in (REPO / "protos").rglob("*.proto"))
    assert on_disk == sorted(PROTO_FILES)


def test_every_message_field_is_commented() -> None:
    # protoc keeps comments in source_code_info only when asked; parse the
    # .proto text instead: each field line must follow a comment line.
    for proto in PROTO_FILES:
        lines = (REPO / proto).read_text().splitlines()
        for number, line in enumerate(lines):
            stripped = line.strip()
            is_field = stripped.endswith(";") and "=" in stripped and not stripped.startswith(("option", "syntax", "package", "//"))
            if not is_field:
                continue
            previous = lines[number - 1].strip()
            is_enum_zero = stripped.split("=")[-1].strip() == "0;" and "UNSPECIFIED" in stripped
            assert previous.startswith("//") or is_enum_zero, f"{proto}:{number + 1} has no comment: {stripped}"


def test_choose_request_round_trip() -> None:
    pb = decision_service_pb2
    request = pb.ChooseRequest(
        policy="layout",
        event_id="e-1",
        context={"device": pb.Namespace(features={"type": pb.FeatureValue(string_value="mobile")})},
        actions=[pb.Action(id="a"), pb.Action(id="b")],
        consent=pb.CONSENT_GRANTED,
    )
    decoded = pb.ChooseRequest.FromString(request.SerializeToString())
    assert decoded == request
    assert decoded.context["device"].features["type"].WhichOneof("kind") == "string_value"
