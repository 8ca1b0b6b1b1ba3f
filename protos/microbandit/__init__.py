"""Protocol buffers of the ``microbandit`` proto package."""
