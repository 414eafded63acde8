"""Example step handlers of the `inventory` namespace: stock adjustments, orders, availability.

Stock levels are pretend: a stable number per warehouse and SKU (`common.stock_level`).
"""

from typing import Any

from server.domain.errors import PermanentError
from server.examples.handlers.common import (
    ExampleHandler,
    items,
    parent,
    require_int,
    stable_id,
    stock_level,
    text,
)
from server.handlers.base import StepContext


class ValidateAdjustmentHandler(ExampleHandler):
    """Checks the SKU and that the adjustment would not make stock negative."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate sku, quantity_change and warehouse."""
        sku = text(step, "sku", "")
        if not sku:
            raise PermanentError("context.sku is required", code="INVALID_CONTEXT")
        change = require_int(step, "quantity_change")
        warehouse = text(step, "warehouse", "primary")
        current = stock_level(warehouse, sku)
        if current + change < 0:
            raise PermanentError(
                f"only {current} of {sku} in stock; cannot remove {-change}", code="INSUFFICIENT"
            )
        return {"sku": sku, "warehouse": warehouse, "quantity_change": change, "current": current}


class ApplyAdjustmentHandler(ExampleHandler):
    """Writes the new stock level."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Apply the validated change."""
        check = parent(step, "validate_adjustment")
        current = int(check.get("current", 0))
        change = int(check.get("quantity_change", require_int(step, "quantity_change")))
        return {"sku": check.get("sku"), "previous": current, "new_level": current + change}


class RecordMovementHandler(ExampleHandler):
    """Appends the adjustment to the stock ledger."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Record the movement applied by the parent step."""
        applied = parent(step, "apply_adjustment")
        return {
            "movement_id": stable_id("mov", step.task_id, applied.get("sku")),
            "reason": text(step, "reason", "manual_adjustment"),
            "new_level": applied.get("new_level"),
        }


class ValidateOrderHandler(ExampleHandler):
    """Checks the order id and its line items."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate order_id and items."""
        order_id = require_int(step, "order_id")
        lines = items(step)
        return {
            "order_id": order_id,
            "line_count": len(lines),
            "total_quantity": sum(quantity for _, quantity in lines),
        }


class ReserveStockHandler(ExampleHandler):
    """Reserves every line item in the primary warehouse; runs beside shipping."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Reserve stock, failing permanently when a SKU is short."""
        order_id = require_int(step, "order_id")
        reservations = []
        for sku, quantity in items(step):
            available = stock_level("primary", sku)
            if available < quantity:
                raise PermanentError(
                    f"{sku}: {quantity} requested, {available} available", code="OUT_OF_STOCK"
                )
            reservations.append({"sku": sku, "quantity": quantity})
        return {"reservation_id": stable_id("rsv", order_id), "reservations": reservations}


class CalculateShippingHandler(ExampleHandler):
    """Prices shipping from the total quantity; runs beside the reservation."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Flat fee plus a per-unit charge (`handler_config.per_unit`, default 1.5)."""
        quantity = int(parent(step, "validate_order").get("total_quantity", 0))
        per_unit = float(step.config.get("per_unit", 1.5))
        return {
            "destination": text(step, "destination", "US"),
            "shipping_cost": round(4.99 + per_unit * quantity, 2),
            "carrier": "ground" if quantity < 10 else "freight",
        }


class CreateShipmentHandler(ExampleHandler):
    """Joins reservation and shipping into a shipment."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Create the shipment for the reserved stock."""
        reservation, shipping = parent(step, "reserve_stock"), parent(step, "calculate_shipping")
        return {
            "shipment_id": stable_id("shp", require_int(step, "order_id")),
            "reservation_id": reservation.get("reservation_id"),
            "carrier": shipping.get("carrier"),
            "shipping_cost": shipping.get("shipping_cost"),
        }


class CheckWarehouseHandler(ExampleHandler):
    """Reports stock for each requested SKU in `handler_config.warehouse`."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Look up the requested SKUs in one warehouse."""
        warehouse = str(step.config.get("warehouse", "primary"))
        levels = {sku: stock_level(warehouse, sku) for sku, _ in items(step)}
        return {"warehouse": warehouse, "levels": levels}


class SummarizeAvailabilityHandler(ExampleHandler):
    """Adds up every warehouse checked by the parent steps."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Say, per SKU, whether the requested quantity is available anywhere in total."""
        totals: dict[str, int] = {}
        for results in step.parent_results.values():
            levels = results.get("levels", {}) if isinstance(results, dict) else {}
            for sku, level in levels.items():
                totals[sku] = totals.get(sku, 0) + int(level)
        requested = dict(items(step))
        return {
            "available": {sku: totals.get(sku, 0) >= qty for sku, qty in requested.items()},
            "totals": totals,
            "warehouses": len(step.parent_results),
        }
