"""The pure core: bytes in, events, detections, alerts and commands out.

Nothing here reads a clock, touches the network or draws unseeded random numbers,
so the sidecar and a backtest over the same records produce the same outputs.
"""
