"""What kubesalt's loader modules share about being loaded (plain Python: they pass in
the dunders Salt gave them)."""


def state_virtual(name, salt_functions, needs):
    """The ``__virtual__`` answer of a state module: ``name`` when the execution function
    ``needs`` (``module.function``) is loaded, else ``(False, why)``, which ``salt-call``
    shows instead of a stack trace."""
    if needs in salt_functions:
        return name
    return (False, f"{name}: the {needs.split('.')[0]} execution module is not loaded")
