"""The lab's BGP stand-in as data: its BIRD config parses, each worker announces its own
pod block, and the router's `show protocols` is read correctly."""

import subprocess

from kubesalt_lab import bgp, config

SHOW_PROTOCOLS = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     23:14:17.611
kernel1    Kernel     master4    up     23:14:17.611
node_worker_1 BGP        ---        up     23:14:21.466  Established
node_worker_2 BGP        ---        start  23:14:21.422  Connect       Socket: Connection refused
"""


def test_parse_protocols_keeps_bgp_sessions_and_their_state():
    assert bgp.parse_protocols(SHOW_PROTOCOLS) == [
        {"name": "node_worker_1", "state": "up", "info": "Established"},
        {
            "name": "node_worker_2",
            "state": "start",
            "info": "Connect       Socket: Connection refused",
        },
    ]


def test_each_worker_announces_its_own_block_and_the_config_parses(tmp_path):
    cluster = config.load().cluster
    blocks = {w: bgp.pod_block(cluster, w) for w in ("worker-1", "worker-2")}
    assert blocks == {"worker-1": "198.19.0.0/26", "worker-2": "198.19.0.64/26"}
    for worker, block in blocks.items():
        text = bgp.standin_config(cluster, worker)
        assert f"route {block} blackhole;" in text
        assert "neighbor 198.18.0.31 as 64512;" in text
        conf = tmp_path / f"{worker}.conf"
        conf.write_text(text)
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        assert (proc.returncode, proc.stderr) == (0, "")
