//! The module system of a contract: the built-in modules `contract`, `assert` and `util`
//! (native modules whose exports the sandbox bootstrap builds), and a resolver that refuses
//! every other specifier with a clear error and records it for `ContractError::ForbiddenImport`.

use super::Shared;
use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::{Declarations, Declared, Exports, ModuleDef};
use rquickjs::{Ctx, Exception, JsLifetime, Module, Object as JsObject, Value as JsValue};
use std::rc::Rc;

/// The only modules a contract may import.
pub(crate) const BUILTIN_MODULES: [&str; 3] = ["contract", "assert", "util"];

/// The exports of the built-in modules, built by the sandbox bootstrap.
pub(super) struct BuiltinExports<'js>(pub(super) JsObject<'js>);

// SAFETY: the only lifetime is the JS one, and `Changed` swaps exactly it.
unsafe impl<'js> JsLifetime<'js> for BuiltinExports<'js> {
    type Changed<'to> = BuiltinExports<'to>;
}

fn export_builtin<'js>(
    ctx: &Ctx<'js>,
    exports: &Exports<'js>,
    module: &str,
    names: &[&str],
) -> rquickjs::Result<()> {
    let m: JsObject = {
        let ud = ctx
            .userdata::<BuiltinExports>()
            .ok_or_else(|| Exception::throw_internal(ctx, "built-in modules are not ready"))?;
        ud.0.get(module)?
    };
    for name in names {
        let v: JsValue = m.get(*name)?;
        exports.export(*name, v)?;
    }
    Ok(())
}

const CONTRACT_EXPORTS: [&str; 4] = ["index", "oplog", "isWriter", "listOplogs"];
const ASSERT_EXPORTS: [&str; 7] = [
    "default",
    "ok",
    "deepEqual",
    "equal",
    "fail",
    "notDeepEqual",
    "notEqual",
];
const UTIL_EXPORTS: [&str; 1] = ["genUUID"];

struct ContractModule;
impl ModuleDef for ContractModule {
    fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
        for n in CONTRACT_EXPORTS {
            decl.declare(n)?;
        }
        Ok(())
    }
    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
        export_builtin(ctx, exports, "contract", &CONTRACT_EXPORTS)
    }
}

struct AssertModule;
impl ModuleDef for AssertModule {
    fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
        for n in ASSERT_EXPORTS {
            decl.declare(n)?;
        }
        Ok(())
    }
    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
        export_builtin(ctx, exports, "assert", &ASSERT_EXPORTS)
    }
}

struct UtilModule;
impl ModuleDef for UtilModule {
    fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
        for n in UTIL_EXPORTS {
            decl.declare(n)?;
        }
        Ok(())
    }
    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
        export_builtin(ctx, exports, "util", &UTIL_EXPORTS)
    }
}

/// Serves `contract`, `assert` and `util`; refuses every other specifier.
pub(super) struct BuiltinResolver {
    pub(super) shared: Rc<Shared>,
}

impl Resolver for BuiltinResolver {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        _base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        if BUILTIN_MODULES.contains(&name) {
            return Ok(name.to_owned());
        }
        self.shared
            .refused_import
            .borrow_mut()
            .get_or_insert_with(|| name.to_owned());
        Err(Exception::throw_message(
            ctx,
            &format!(
                "Cannot import '{name}': a contract may import only the built-in modules 'contract', 'assert' and 'util'"
            ),
        ))
    }
}

pub(super) struct BuiltinLoader;

impl Loader for BuiltinLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        match name {
            "contract" => Module::declare_def::<ContractModule, _>(ctx.clone(), name),
            "assert" => Module::declare_def::<AssertModule, _>(ctx.clone(), name),
            "util" => Module::declare_def::<UtilModule, _>(ctx.clone(), name),
            _ => Err(rquickjs::Error::new_loading(name)),
        }
    }
}
