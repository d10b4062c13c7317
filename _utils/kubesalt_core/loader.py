"""What kubesalt's loader modules share about being loaded (plain Python: they pass in
the dunders Salt gave them)."""


def state_virtual(salt_functions, needs):
    """The ``__virtual__`` answer of a state module named like its execution module: that
    name when the execution function ``needs`` (``module.function``) is loaded, else
    ``(False, why)``, which ``salt-call`` shows instead of a stack trace."""
    name = needs.split(".")[0]
    if needs in salt_functions:
        return name
    return (False, f"{name}: the {name} execution module is not loaded")
