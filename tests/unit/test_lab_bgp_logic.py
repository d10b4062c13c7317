"""The router's `show protocols` as the lab reads it."""

from kubesalt_lab import bgp

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


def test_kernel_routes_parse_with_one_path_per_node_of_a_multipath_route():
    text = (
        "198.18.16.0/20 proto bird metric 32 \n"
        "\tnexthop via 198.18.0.21 dev eth0 weight 1 \n"
        "\tnexthop via 198.18.0.22 dev eth0 weight 1 \n"
        "198.19.1.0/26 via 198.18.0.21 dev eth0 proto bird metric 32 \n"
    )
    assert bgp.parse_routes(text) == {
        "198.18.16.0/20": ["198.18.0.21", "198.18.0.22"],
        "198.19.1.0/26": ["198.18.0.21"],
    }
