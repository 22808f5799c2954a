"""Analyses of trained networks and of weight encoders; import the module you need, e.g.
``weightspace.analysis.convergence`` (convergent learning between CartPoleNets, paper 004)."""
