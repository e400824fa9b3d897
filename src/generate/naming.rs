//! How the generated shop names its spans and attributes: the reference instrumentation
//! (`cart.add_item`, `cart.id`, ...) or the OpenTelemetry Demo's astronomy shop
//! (`oteldemo.CartService/AddItem`, `app.user.id`, with the cart keyed by user).

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NamingPreset {
    /// The instrumentation cartscope follows first: cart.add_item, cart.id, ...
    Reference,
    /// The OpenTelemetry Demo's names (oteldemo.CartService/AddItem, app.user.id, ...).
    OtelDemo,
}

#[derive(Debug, Clone)]
pub struct Naming {
    pub add_item: &'static str,
    pub begin_checkout: &'static str,
    pub shipping: &'static str,
    pub payment: &'static str,
    pub complete: &'static str,
    pub complete_kind: Kind,
    pub page_view: &'static str,
    pub search: &'static str,
    /// `None`: the cart has no id of its own and is keyed by its user.
    pub attr_cart_id: Option<&'static str>,
    pub attr_user_id: &'static str,
    pub attr_product_id: &'static str,
    pub attr_quantity: &'static str,
    /// A line's unit price (written with `--value-recorded lines` only).
    pub attr_price: &'static str,
    pub attr_item_count: &'static str,
    pub attr_total_value: &'static str,
    pub attr_amount: &'static str,
    pub attr_order_id: &'static str,
    pub cart_keyed_by_user: bool,
    /// `service.name` of each service, in `Service::ALL` order.
    pub services: [&'static str; 6],
}

impl Naming {
    pub fn preset(p: NamingPreset) -> Naming {
        match p {
            NamingPreset::Reference => Naming {
                add_item: "cart.add_item",
                begin_checkout: "cart.begin_checkout",
                shipping: "shipping.calculate_rates",
                payment: "payment.authorize",
                complete: "checkout.complete",
                complete_kind: Kind::Internal,
                page_view: "GET /product",
                search: "catalog.search",
                attr_cart_id: Some("cart.id"),
                attr_user_id: "user.id",
                attr_product_id: "product.id",
                attr_quantity: "product.quantity",
                attr_price: "product.price",
                attr_item_count: "cart.item_count",
                attr_total_value: "cart.total_value",
                attr_amount: "payment.amount",
                attr_order_id: "order.id",
                cart_keyed_by_user: false,
                services: [
                    "frontend", "catalog", "cart", "checkout", "shipping", "payment",
                ],
            },
            NamingPreset::OtelDemo => Naming {
                add_item: "oteldemo.CartService/AddItem",
                begin_checkout: "oteldemo.CheckoutService/PlaceOrder",
                shipping: "oteldemo.ShippingService/GetQuote",
                payment: "oteldemo.PaymentService/Charge",
                complete: "orders publish",
                complete_kind: Kind::Producer,
                page_view: "GET /api/products",
                search: "oteldemo.ProductCatalogService/SearchProducts",
                attr_cart_id: None,
                attr_user_id: "app.user.id",
                attr_product_id: "app.product.id",
                attr_quantity: "app.product.quantity",
                attr_price: "app.product.price",
                attr_item_count: "app.cart.items.count",
                attr_total_value: "app.cart.total.value",
                attr_amount: "app.payment.amount",
                attr_order_id: "app.order.id",
                cart_keyed_by_user: true,
                services: [
                    "frontend",
                    "product-catalog",
                    "cart",
                    "checkout",
                    "shipping",
                    "payment",
                ],
            },
        }
    }
}

/// A span's kind, as the generator writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
    Producer,
}

impl Kind {
    pub fn otlp(self) -> u8 {
        match self {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
            Kind::Producer => 4,
        }
    }
}
