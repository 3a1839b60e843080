"""ATM90E36A poly-phase metering IC: register map, SPI driver and register-exact simulator.

Public entry points: :class:`hw.atm90e36.driver.Atm90e36` with :class:`~hw.atm90e36.driver.Atm90e36Config`,
:class:`hw.atm90e36.sim.Atm90e36Sim`, the data in :mod:`hw.atm90e36.regmap`, errors in
:mod:`hw.atm90e36.errors`.
"""
