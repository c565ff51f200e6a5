"""Conary names appbuild does not have, each with what to do instead.

A recipe written for conary may call ``r.XInetdService(...)`` or use ``loadRecipe``;
instead of a bare ``AttributeError`` or ``NameError`` it stops with
``file:line: conary's r.XInetdService is not supported: <why, and what to use>``.
:data:`UNSUPPORTED` holds recipe attributes (``r.NAME``), :data:`UNSUPPORTED_GLOBALS`
names a recipe file used without importing them. An action registered under one of
these names (:data:`appbuilder.recipe.actions.REGISTRY`) wins: the table is asked only
for names the registry does not have when the recipe looks them up.
"""

from __future__ import annotations

_VCS = ("fetching from a version control system at cook time is not reproducible: make a release "
        "tarball of the revision and name it with r.addArchive(url, sha256=...)")
_SCRIPTS = ("appbuild packages carry no install scripts: images are assembled whole; do the work at "
            "build time, or in a service of the appliance")
_USERS = "system users and groups are made by the image group's `users` setting, not by a package"
_LDSO = ("the cook finds shared libraries from their ELF headers; for a library directory outside the "
         "standard ones install a file in /etc/ld.so.conf.d with r.Create")
_NO_CHECK = "appbuild has no such policy check; drop the line"
_TAGS = ("conary's tag handlers ran at install time; appbuild assembles images without them: do the "
         "work at build time or in a service")

UNSUPPORTED: dict[str, str] = {
    # source actions
    "addMercurialSnapshot": _VCS,
    "addGitSnapshot": _VCS,
    "addBzrSnapshot": _VCS,
    "addCvsSnapshot": _VCS,
    "addSvnSnapshot": _VCS,
    "addCapsule": "a foreign package is imported, not cooked: appbuild import deb|rpm",
    "addAction": "use r.Run(command, dir=...) after the sources are unpacked",
    "addPreUpdateScript": _SCRIPTS,
    "addPostUpdateScript": _SCRIPTS,
    "addPostInstallScript": _SCRIPTS,
    "addPreInstallScript": _SCRIPTS,
    "addPreEraseScript": _SCRIPTS,
    "addPostEraseScript": _SCRIPTS,
    "addPreRollbackScript": _SCRIPTS,
    "addPostRollbackScript": _SCRIPTS,
    # build actions
    "Automake": "run the autotools yourself with r.Run('autoreconf -fi') (and declare automake:runtime)",
    "MakeParallelSubdir": "use r.Make(dir=...) for each subdirectory",
    "Ant": "Java builds: use r.Run('ant ...') and declare ant in buildRequires",
    "JavaCompile": "Java builds: use r.Run('javac ...')",
    "JavaDoc": "install generated documentation with r.Install",
    "ClassPath": "Java builds: set CLASSPATH in r.Run(..., env=...)",
    "CompilePython": "byte-compile with r.Run('python3 -m compileall %(destdir)s...')",
    "Ldconfig": _LDSO,
    "Link": "hard links are not made by a recipe action: use r.Symlink, or r.Run('ln ...')",
    "TestSuite": "run the tests during the build with r.Run('make check')",
    "ConsoleHelper": "consolehelper is not part of appbuild appliances",
    "IncludeLicense": "declare the license as the class attribute license = 'SPDX-ID'; the SBOM says it",
    "MakeDevices": "device nodes come from devtmpfs at boot; images carry none",
    "MakeFIFO": "make named pipes at run time (a service or tmpfiles.d entry)",
    "XInetdService": "xinetd is not part of appbuild appliances: install a systemd socket unit with r.Install",
    "XMLCatalogEntry": "XML catalogs are not updated by packages: run xmlcatalog with r.Run at build time",
    "SGMLCatalogEntry": "SGML catalogs are not updated by packages: run install-catalog with r.Run at build time",
    "User": _USERS,
    "Group": _USERS,
    "SupplementalGroup": _USERS,
    "UtilizeUser": _USERS,
    "UtilizeGroup": _USERS,
    "TagSpec": _TAGS,
    "TagHandler": _TAGS,
    "TagDescription": _TAGS,
    "SharedLibrary": _LDSO,
    "InitialContents": "appliances update whole images: there is no per-file merge on update",
    "Transient": "appliances update whole images: there is no per-file merge on update",
    "ExcludeDirectories": "empty directories are kept when a recipe makes them (r.MakeDirs); others are not packaged",
    "ByDefault": "which components go in an image is the group's choice (defaultComponents, add(components=...))",
    "setByDefaultOn": "which components go in an image is the group's choice (defaultComponents)",
    "setByDefaultOff": "which components go in an image is the group's choice (defaultComponents)",
    "extraSource": "conary internals: use the source actions (appbuild explain)",
    "extraBuild": "conary internals: use the build actions (appbuild explain)",
    # policy names a recipe gave exceptions to
    "NonBinariesInBindirs": _NO_CHECK,
    "FilesInMandir": _NO_CHECK,
    "CheckSonames": _NO_CHECK,
    "CheckDestDir": _NO_CHECK,
    "DanglingSymlinks": _NO_CHECK,
    "FixupMultilibPaths": _NO_CHECK,
    "WorldWriteableExecutables": _NO_CHECK,
    "LinkCount": _NO_CHECK,
    "ExecutableLibraries": _NO_CHECK,
    "ImproperlyShared": _NO_CHECK,
    "IgnoredSetuid": _NO_CHECK,
    "NonMultilibComponent": _NO_CHECK,
    "NonMultilibDirectories": _NO_CHECK,
    "NonUTF8Filenames": _NO_CHECK,
    "BadInterpreterPaths": _NO_CHECK,
    "FilesForDirectories": _NO_CHECK,
    "ObsoletePaths": _NO_CHECK,
    "LinkType": _NO_CHECK,
    "CheckDesktopFiles": _NO_CHECK,
    "NormalizeCompression": "appbuild does not recompress files; drop the line",
    "NormalizeLibrarySymlinks": "appbuild does not rewrite library symlinks; drop the line",
    "NormalizePkgConfig": "appbuild does not move .pc files; drop the line",
    "NormalizeInterpreterPaths": "appbuild does not rewrite #! lines; fix them with r.Replace",
    "RelativeSymlinks": "appbuild keeps symlinks as the build made them; use r.Symlink with a relative target",
    "AutoDoc": "install documentation explicitly (r.Install into %(thisdocdir)s)",
    "Flavor": "a package's flavor is its architecture and the Use flags it reads",
    "PythonEggs": "Python packages are built with r.Run; eggs are not checked",
    "ParseManifest": "conary internals: name the files with the build actions",
    "MakeInstallPath": "use r.MakeInstall(rootVar=...)",
}

# names a conary recipe file used without importing them (globals, not r.X)
UNSUPPORTED_GLOBALS: dict[str, str] = {
    "loadRecipe": "an old name of loadSuperClass: write loadSuperClass('NAME')",
    "util": "conary's util library is not part of the recipe namespace: use the recipe actions "
            "(r.Run, r.Install, ...) or Python's os and shutil",
    "build": "conary's build module is not part of the recipe namespace: use the recipe actions",
    "action": "conary's action module is not part of the recipe namespace: use the recipe actions",
    "PackageFlags": "flags of another package are not supported: a recipe reads its own (Flags.NAME) and Use",
    "clearCrossRequires": "appbuild does not cross-compile: x86 is built natively with -m32",
    "clearCrossReqs": "appbuild does not cross-compile: x86 is built natively with -m32",
    "FilesetRecipe": "filesets are not troves in appbuild: name the components in a group",
    "RedirectRecipe": "redirects are not troves in appbuild: replace the package in the groups (r.replace)",
    "DerivedPackageRecipe": "derived packages are not supported: copy the recipe and change it",
    "DerivedCapsuleRecipe": "derived capsules are not supported: import the package (appbuild import)",
    "CapsuleRecipe": "a foreign package is imported, not cooked: appbuild import deb|rpm",
    "UserInfoRecipe": _USERS,
    "GroupInfoRecipe": _USERS,
    "GroupSetRecipe": "use GroupRecipe (add, remove, replace, addNewGroup)",
    "Factory": "recipe factories are not supported: write the recipe",
}


def unsupported(name: str, *, attribute: bool) -> str | None:
    """``conary's NAME is not supported: why`` for a known conary name, else None."""
    reason = (UNSUPPORTED if attribute else UNSUPPORTED_GLOBALS).get(name)
    if reason is None:
        return None
    shown = f"r.{name}" if attribute else name
    return f"conary's {shown} is not supported: {reason}"


